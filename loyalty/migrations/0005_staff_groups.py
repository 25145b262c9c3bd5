"""Two staff groups with the permissions their work needs (data only: no schema change).

"Loyalty manager" configures the programme and reads everything; "Support agent" looks
customers up and adjusts points within ``LOYALTY["SUPPORT_ADJUST_LIMIT"]``. Nobody gets
add/change/delete on the points ledger: its rows are written by services only (and the
admin refuses edits to it even for superusers). See docs/staff.md.

The lists are frozen here on purpose: a model added later gets its permissions in a
migration of its own. Running this again (or after staff edited the groups) only adds
what is missing; reversing it removes these permissions from the groups and deletes a
group left with none.
"""

from django.db import migrations

MANAGER = "Loyalty manager"
SUPPORT = "Support agent"

#: Everything loyalty had when this migration was written.
LOYALTY_MODELS = [
    "campaign",
    "customerhealth",
    "earningrule",
    "healthmodelfit",
    "healthrun",
    "healthsettings",
    "member",
    "message",
    "orderevent",
    "pendingpoints",
    "pointsentry",
    "program",
    "purchase",
    "redemption",
    "referral",
    "reward",
    "segmentchange",
    "tier",
    "tierchange",
]
#: What a manager configures (add, change, delete); everything else they only view.
MANAGER_EDITS = ["program", "tier", "earningrule", "reward", "campaign", "healthsettings"]

GROUPS = {
    MANAGER: sorted(
        {f"view_{model}" for model in LOYALTY_MODELS}
        | {f"{action}_{model}" for model in MANAGER_EDITS for action in ("add", "change", "delete")}
        # Change on members: adjusting points (no limit for managers), issuing a reward,
        # resending a message; the ledger itself stays read-only for everyone.
        | {"change_member"}
    ),
    SUPPORT: sorted(
        {f"view_{model}" for model in ("member", "pointsentry", "purchase", "redemption", "message")}
        # Adjusting points (up to the limit), issuing a reward, resending a message.
        | {"change_member"}
    ),
}

FORBIDDEN = {"add_pointsentry", "change_pointsentry", "delete_pointsentry", "delete_member"}
assert not FORBIDDEN & (set(GROUPS[MANAGER]) | set(GROUPS[SUPPORT]))


def _create_loyalty_permissions(apps, using) -> None:
    """On a fresh database, permissions are created by ``post_migrate``, after every migration:
    create loyalty's now (idempotent), so the groups below can be given them."""
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("loyalty")
    models_module = getattr(app_config, "models_module", None)
    if models_module is None:  # a migration state's app config has none; create_permissions wants one
        app_config.models_module = True
    try:
        create_permissions(app_config, verbosity=0, using=using, apps=apps)
    finally:
        if models_module is None:
            app_config.models_module = None


def _permissions(apps, using, codenames):
    Permission = apps.get_model("auth", "Permission")
    found = list(
        Permission.objects.using(using).filter(content_type__app_label="loyalty", codename__in=list(codenames))
    )
    missing = set(codenames) - {p.codename for p in found}
    if missing:
        raise RuntimeError(f"loyalty permissions missing: {', '.join(sorted(missing))}")
    return found


def create_groups(apps, schema_editor=None) -> None:
    using = schema_editor.connection.alias if schema_editor is not None else "default"
    _create_loyalty_permissions(apps, using)
    Group = apps.get_model("auth", "Group")
    for name, codenames in GROUPS.items():
        group, _created = Group.objects.using(using).get_or_create(name=name)
        group.permissions.add(*_permissions(apps, using, codenames))


def remove_groups(apps, schema_editor=None) -> None:
    using = schema_editor.connection.alias if schema_editor is not None else "default"
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        group = Group.objects.using(using).filter(name=name).first()
        if group is None:
            continue
        group.permissions.remove(
            *Permission.objects.using(using).filter(content_type__app_label="loyalty", codename__in=codenames)
        )
        if not group.permissions.exists():
            group.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0004_health_and_campaigns"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
