"""Demo data for the embedded default: a venue owner, a health official, a few venues.

Idempotent (run by ``make run`` every time). Refuses to run with DEBUG off: demo accounts
with published passwords must never exist in production.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from venues.keys import signing_key_create
from venues.models import Category, District, SigningKey
from venues.services import venue_register

OWNER = ("owner@leavehome.example", "demo-owner-2026")
OFFICIAL = ("official@leavehome.example", "demo-official-2026")
ADMIN = ("admin@leavehome.example", "demo-admin-2026")

VENUES = [
    {
        "name_en": "Lucky Noodle House",
        "name_zh": "好運麵家",
        "address_en": "12 Wellington Street, Central",
        "address_zh": "中環威靈頓街12號",
        "district": District.CENTRAL_WESTERN,
        "category": Category.CATERING,
    },
    {
        "name_en": "Harbour City Bookshop",
        "name_zh": "海港城書店",
        "address_en": "3 Canton Road, Tsim Sha Tsui",
        "address_zh": "尖沙咀廣東道3號",
        "district": District.YAU_TSIM_MONG,
        "category": Category.RETAIL,
    },
    {
        "name_en": "Sha Tin Town Hall",
        "name_zh": "沙田大會堂",
        "address_en": "1 Yuen Wo Road, Sha Tin",
        "address_zh": "沙田源禾路1號",
        "district": District.SHA_TIN,
        "category": Category.GOVERNMENT,
    },
    {"name_en": "AB1234", "name_zh": "AB1234", "category": Category.TAXI},
]


class Command(BaseCommand):
    help = "Create demo accounts and venues for the embedded default (never in production)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("demo_data creates accounts with published passwords; it only runs with DEBUG on.")
        with transaction.atomic():
            if not SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).exists():
                signing_key_create()
            owner = self._user(*OWNER)
            official = self._user(*OFFICIAL, is_staff=True)
            self._user(*ADMIN, is_staff=True, is_superuser=True)
            officials = Group.objects.filter(name="Health officials").first()
            if officials is not None:
                official.groups.add(officials)
            if not owner.venues.exists():
                for venue in VENUES:
                    venue_register(owner=owner, **venue)
        self.stdout.write(
            "\nDemo logins (embedded default only):\n"
            f"  venue owner      {OWNER[0]} / {OWNER[1]}       http://127.0.0.1:8000/accounts/login/\n"
            f"  health official  {OFFICIAL[0]} / {OFFICIAL[1]}  http://127.0.0.1:8000/admin/\n"
            f"  administrator    {ADMIN[0]} / {ADMIN[1]}       http://127.0.0.1:8000/admin/\n"
        )

    @staticmethod
    def _user(email, password, **flags):
        user, created = get_user_model().objects.get_or_create(
            username=email, defaults={"email": email, "is_active": True, **flags}
        )
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
        return user
