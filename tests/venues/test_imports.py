"""The express channel: a chain's CSV registers all branches or none."""

import io
import zipfile

import pytest

from tests.venues.qr import qr_texts_in_pdf
from venues.codes import code_qr_text
from venues.imports import ImportInvalid, venues_validate
from venues.models import Venue, VenueCode

pytestmark = pytest.mark.django_db

HEADER = "name_en,name_zh,address_en,address_zh,district,category\n"


def _csv(rows: list[str]) -> bytes:
    return (HEADER + "\n".join(rows) + "\n").encode("utf-8")


def _upload(client, data: bytes, name="branches.csv"):
    upload = io.BytesIO(data)
    upload.name = name
    return client.post("/venues/import/", {"file": upload})


def test_a_csv_with_one_bad_row_creates_nothing_and_names_the_row(owner_client, signing_key):
    rows = [f"Branch {n},分店{n},{n} Queen's Road,皇后大道{n}號,Central and Western,catering" for n in range(1, 5)]
    rows.insert(2, "Bad Branch,壞分店,,,Atlantis,catering")  # spreadsheet row 4 (header is row 1)
    response = _upload(owner_client, _csv(rows))
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was registered" in page
    assert "<td>4</td><td>district</td>" in page
    assert not Venue.objects.exists() and not VenueCode.objects.exists()


def test_every_problem_is_reported_by_row_and_column(owner, signing_key):
    rows = ["Good,好,,,,retail", ",無名,,,,retail", "Cab,,,,,taxi", "Shop,店,,,,casino"]
    with pytest.raises(ImportInvalid) as caught:
        venues_validate(owner=owner, data=_csv(rows))
    assert {(p.row, p.column) for p in caught.value.problems} == {(3, "name_en"), (4, "name_en"), (5, "category")}


def test_unknown_and_missing_columns_are_reported_on_the_header_row(owner, signing_key):
    with pytest.raises(ImportInvalid) as caught:
        venues_validate(owner=owner, data=b"name,category\nX,retail\n")
    assert {(p.row, p.column) for p in caught.value.problems} == {(1, "name_en"), (1, "name")}


def test_non_utf8_file_is_refused_clearly(owner, signing_key):
    with pytest.raises(ImportInvalid, match="1 problems") as caught:
        venues_validate(owner=owner, data=_csv(["Tea,茶樓,,,,catering"]).decode().encode("big5"))
    assert "UTF-8" in caught.value.problems[0].message


def test_slugs_labels_taxis_bom_and_blank_lines_are_accepted(owner_client, signing_key):
    data = "\ufeff".encode() + _csv(["Tea,茶,,,yau-tsim-mong,Catering", "hk 88,,,,,taxi", ",,,,,"])
    response = _upload(owner_client, data)
    assert response.status_code == 302
    assert sorted(Venue.objects.values_list("name_en", "district")) == [("HK88", ""), ("Tea", "yau-tsim-mong")]


def test_import_does_not_query_per_row(owner, signing_key):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from venues.imports import venues_import

    rows = [f"Branch {n},分店{n},,,Sha Tin,retail" for n in range(200)]
    with CaptureQueriesContext(connection) as queries:
        batch = venues_import(owner=owner, file_name="chain.csv", data=_csv(rows))
    assert batch.venues.count() == 200
    # One read (the signing key) and bulk inserts; SQLite splits bulk inserts into a few more
    # statements (its bound-parameter limit), so the total is only bounded, not exact.
    assert [query["sql"].split()[0] for query in queries].count("SELECT") == 1
    assert len(queries) < 25


def test_the_sample_csv_imports_as_it_is(owner_client, signing_key):
    sample = owner_client.get("/venues/import/sample.csv").content
    assert _upload(owner_client, sample).status_code == 302
    assert sorted(Venue.objects.values_list("category", flat=True)) == ["catering", "taxi"]


def test_an_oversized_file_is_refused_before_parsing(owner_client, signing_key):
    response = _upload(owner_client, _csv(["Tea,茶,,,,catering"]) + b"#" * (5 * 1024 * 1024))
    assert "larger than 5 MB" in response.content.decode()
    assert not Venue.objects.exists()


@pytest.mark.slow
def test_500_branches_are_created_and_yield_a_zip_of_500_posters(
    owner_client, signing_key, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path
    rows = [f"Lucky Noodle {n},好運麵家{n}號店,{n} Nathan Road,彌敦道{n}號,Yau Tsim Mong,catering" for n in range(500)]
    response = _upload(owner_client, _csv(rows))
    assert response.status_code == 302
    assert Venue.objects.count() == 500 and VenueCode.objects.count() == 500

    with django_capture_on_commit_callbacks(execute=True):  # the build runs here (no broker)
        build_page = owner_client.post(response["Location"] + "posters/")["Location"]
    zip_response = owner_client.get(build_page + "posters.zip")
    assert zip_response.streaming and zip_response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zip_response.streaming_content)))
    names = archive.namelist()
    assert len(names) == len(set(names)) == 500 and all(name.endswith(".pdf") for name in names)
    assert archive.testzip() is None
    # Spot-check that a poster in the ZIP holds its own venue's code.
    code = VenueCode.objects.select_related("venue", "signing_key").get(venue__name_en="Lucky Noodle 123")
    (name,) = [name for name in names if name.startswith("Lucky-Noodle-123-")]
    assert qr_texts_in_pdf(archive.read(name)) == [code_qr_text(code)]


def test_a_cell_over_the_csv_field_limit_is_a_problem_not_a_server_error(owner_client, signing_key):
    huge = "x" * 200_000
    response = _upload(owner_client, _csv([f"Tea,茶樓,{huge},,,catering"]))
    assert response.status_code == 400
    assert "cannot be read as CSV" in response.content.decode()
    assert not Venue.objects.exists()
