"""Survey permissions for the two staff groups of 0005 (data only: no schema change).

"Support agent" reads surveys, invitations and responses (a customer on the phone about
their answer); "Loyalty manager" configures surveys (view, add, change) and reads
invitations and responses. Nobody gets change or delete on responses or invitations: they
are the customers' words and the survey service's record (the admin refuses edits anyway).

Frozen lists, like 0005: adding again only adds what is missing; reversing removes these
permissions from the groups (the groups themselves stay: 0005 owns them).
"""

from django.db import migrations

MANAGER = "Loyalty manager"
SUPPORT = "Support agent"

GROUPS = {
    MANAGER: [
        "add_survey",
        "change_survey",
        "view_survey",
        "view_surveyinvitation",
        "view_surveyresponse",
    ],
    SUPPORT: ["view_survey", "view_surveyinvitation", "view_surveyresponse"],
}


def _create_loyalty_permissions(apps, using) -> None:
    """Permissions for the new models exist only after ``post_migrate``: create them now (idempotent)."""
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("loyalty")
    models_module = getattr(app_config, "models_module", None)
    if models_module is None:
        app_config.models_module = True
    try:
        create_permissions(app_config, verbosity=0, using=using, apps=apps)
    finally:
        if models_module is None:
            app_config.models_module = None


def add_permissions(apps, schema_editor=None) -> None:
    using = schema_editor.connection.alias if schema_editor is not None else "default"
    _create_loyalty_permissions(apps, using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        found = list(Permission.objects.using(using).filter(content_type__app_label="loyalty", codename__in=codenames))
        missing = set(codenames) - {p.codename for p in found}
        if missing:
            raise RuntimeError(f"loyalty permissions missing: {', '.join(sorted(missing))}")
        group, _created = Group.objects.using(using).get_or_create(name=name)
        group.permissions.add(*found)


def remove_permissions(apps, schema_editor=None) -> None:
    using = schema_editor.connection.alias if schema_editor is not None else "default"
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        group = Group.objects.using(using).filter(name=name).first()
        if group is not None:
            group.permissions.remove(
                *Permission.objects.using(using).filter(content_type__app_label="loyalty", codename__in=codenames)
            )


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0007_surveys"),
        ("loyalty", "0005_staff_groups"),
    ]

    operations = [migrations.RunPython(add_permissions, remove_permissions)]
