"""B5 codes: venues registered through the bulk path; codes signed, PNGs and posters rendered per second.

Target on this machine: ≥ 5,000 codes signed/s, ≥ 10 posters/s per core. Local limits in the
same run: a bare Ed25519 signature of a payload of the same size (the ceiling of signing),
and a bare QR encode without drawing (the ceiling of rendering).
"""

import io
import os
import time
import uuid

from bench.common import Options, Report, Stopwatch, check, django_setup, parse_options, rate
from bench.processes import peak_rss_mib

SIZES = {
    "small": {"venues": 300, "signed": 300, "png": 20, "posters": 4},
    "medium": {"venues": 10_000, "signed": 10_000, "png": 200, "posters": 40},
    "full": {"venues": 70_000, "signed": 70_000, "png": 1_000, "posters": 200},
}
CATEGORIES = ["catering", "retail", "government", "leisure", "workplace", "education", "healthcare"]
DISTRICTS = ["central-western", "wan-chai", "eastern", "yau-tsim-mong", "sham-shui-po", "sha-tin", "tuen-mun"]


def _owner():
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench-chain-owner", defaults={"email": "bench@x.test"})
    return user


def _signing_key_ready():
    from venues.keys import NoActiveSigningKey, signing_key_active, signing_key_create

    try:
        return signing_key_active()
    except NoActiveSigningKey:
        return signing_key_create()


def chain_csv_rows(count: int, run: str) -> list[dict]:
    """A restaurant chain's branches, as the CSV of the bulk path holds them."""
    return [
        {
            "name_en": f"Bench Noodle House {run} #{i}",
            "name_zh": f"測試麵家 {run} 第{i}分店",
            "address_en": f"{i} Nathan Road, Kowloon",
            "address_zh": f"九龍彌敦道{i}號",
            "district": DISTRICTS[i % len(DISTRICTS)],
            "category": CATEGORIES[i % len(CATEGORIES)],
        }
        for i in range(count)
    ]


def chain_csv(rows: list[dict]) -> bytes:
    """The rows as the CSV file a chain uploads (UTF-8, header first)."""
    import csv

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def venues_bulk_register(rows: list[dict], *, owner) -> list:
    """Register the rows through the express channel: CSV files of at most VENUE_IMPORT_MAX_ROWS rows
    each, every row validated by the venue form, each file one transaction of two bulk inserts."""
    from django.conf import settings

    from venues.imports import venues_import
    from venues.models import Venue

    limit = settings.VENUE_IMPORT_MAX_ROWS
    batches = [
        venues_import(owner=owner, file_name=f"bench-{start}.csv", data=chain_csv(rows[start : start + limit]))
        for start in range(0, len(rows), limit)
    ]
    return list(Venue.objects.filter(import_batch__in=batches).order_by("created_at", "name_en"))


def run(options: Options) -> Report:
    from venues.codes import code_jws, code_qr_text
    from venues.models import Venue, VenueCode
    from venues.rendering import poster_pdf, qr_matrix, qr_png

    sizes = SIZES[options.scale]
    report = Report("B5 codes: bulk registration, signing, PNG and poster rendering", options)
    _signing_key_ready()
    owner = _owner()
    run_id = uuid.uuid4().hex[:6]
    rows = chain_csv_rows(sizes["venues"], run_id)

    with Stopwatch() as registering:
        venues = venues_bulk_register(rows, owner=owner)
    ids = [venue.id for venue in venues]
    check(Venue.objects.filter(id__in=ids).count() == len(rows), "every CSV row became a venue")
    check(VenueCode.objects.filter(venue_id__in=ids, version=1).count() == len(rows), "each venue has code v1")

    codes = list(VenueCode.objects.filter(venue_id__in=ids[: sizes["signed"]]).select_related("venue", "signing_key"))
    with Stopwatch() as signing:
        jws_list = [code_jws(code) for code in codes]
    _verify_sample(codes, jws_list)

    qr_texts = [code_qr_text(code) for code in codes[: max(sizes["png"], sizes["posters"])]]
    with Stopwatch() as png:
        images = [qr_png(text) for text in qr_texts[: sizes["png"]]]
    _verify_png(images[0], qr_texts[0])
    sample_venues = {code.id: code.venue for code in codes}
    with Stopwatch() as posters:
        pdfs = [
            poster_pdf(
                qr_text=text,
                name_en=sample_venues[code.id].name_en,
                name_zh=sample_venues[code.id].name_zh,
                address_en=sample_venues[code.id].address_en,
                address_zh=sample_venues[code.id].address_zh,
            )
            for code, text in zip(codes[: sizes["posters"]], qr_texts, strict=False)
        ]
    check(all(pdf.startswith(b"%PDF") for pdf in pdfs), "posters are PDFs")
    _verify_poster(pdfs[0], sample_venues[codes[0].id].name_en)

    limit_sign = _limit_ed25519(len(jws_list[0]), seconds=1.0)
    limit_qr = _limit_qr_encode(qr_texts[0], qr_matrix, seconds=1.0)
    report.table(
        "Results (one process, so per second = per core)",
        ["what", "count", "seconds", "per second", "local limit", "ratio", "target"],
        [
            ["venues registered (CSV express channel)", len(rows), f"{registering.seconds:.2f}",
             rate(len(rows), registering.seconds), "", "", ""],
            ["codes signed (vk decrypt + JWS)", len(jws_list), f"{signing.seconds:.2f}",
             rate(len(jws_list), signing.seconds), f"{limit_sign:,.0f}/s bare Ed25519",
             f"{rate(len(jws_list), signing.seconds) / limit_sign:.2f}", "≥ 5,000/s"],
            ["QR PNG rendered", len(images), f"{png.seconds:.2f}", rate(len(images), png.seconds),
             f"{limit_qr:,.0f}/s bare QR encode", f"{rate(len(images), png.seconds) / limit_qr:.2f}", ""],
            ["A4 poster PDF rendered", len(pdfs), f"{posters.seconds:.2f}", rate(len(pdfs), posters.seconds),
             "", "", "≥ 10/s per core"],
        ],
    )  # fmt: skip
    report.table(
        "Peak memory",
        ["process", "peak RSS MiB"],
        [["bench (registers, signs, renders)", f"{peak_rss_mib(os.getpid()):.0f}"]],
    )
    report.note(
        f"Correctness: {len(rows)} venues with one v1 code each; a sample of JWS verified with PyJWT against "
        "the published JWKS (sub, ver and vk equal the stored ones); a PNG decoded by zxing-cpp to the QR text; "
        "a poster's text layer holds the venue's name."
    )
    return report


def _verify_sample(codes, jws_list) -> None:
    import jwt
    from jwt.algorithms import OKPAlgorithm

    from leavehome.lib.b64u import b64u_encode
    from venues.keys import jwks_document
    from venues.keystore import vk_decrypt

    keys = {key["kid"]: OKPAlgorithm.from_jwk(key) for key in jwks_document()["keys"]}
    step = max(1, len(codes) // 50)
    for code, token in list(zip(codes, jws_list, strict=True))[::step]:
        kid = jwt.get_unverified_header(token)["kid"]
        claims = jwt.decode(token, key=keys[kid], algorithms=["EdDSA"], options={"verify_aud": False})
        check(claims["sub"] == str(code.venue_id) and claims["ver"] == code.version, "JWS names its venue and version")
        check(claims["vk"] == b64u_encode(vk_decrypt(code)), "JWS carries the venue key")


def _verify_png(image: bytes, text: str) -> None:
    import zxingcpp
    from PIL import Image

    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(image)))
    check(bool(decoded) and decoded[0].text == text, "the PNG decodes to the QR text")


def _verify_poster(pdf: bytes, name_en: str) -> None:
    from pypdf import PdfReader

    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    check(name_en in text, "the poster names the venue")


def _limit_ed25519(payload_length: int, *, seconds: float) -> float:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    payload = os.urandom(payload_length)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(200):
            key.sign(payload)
        count += 200
    return rate(count, time.perf_counter() - started)


def _limit_qr_encode(text: str, qr_matrix, *, seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        qr_matrix(text)
        count += 1
    return rate(count, time.perf_counter() - started)


def main(argv=None) -> None:
    options = parse_options("bench.b5_codes", __doc__.splitlines()[0], argv=argv)
    django_setup(options)
    run(options).emit()


if __name__ == "__main__":
    main()
