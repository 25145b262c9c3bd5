"""Email outbox permissions for the two staff groups of 0005 (data only: no schema change).

"Support agent" reads the emails (a customer on the phone asking where their code is);
"Loyalty manager" reads them and may send them again or cancel them (``change``; the admin
never edits a row). Frozen lists, like 0005.
"""

from django.db import migrations

MANAGER = "Loyalty manager"
SUPPORT = "Support agent"

GROUPS = {
    MANAGER: ["view_outboundemail", "change_outboundemail"],
    SUPPORT: ["view_outboundemail"],
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
        ("loyalty", "0009_outbox"),
        ("loyalty", "0005_staff_groups"),
    ]

    operations = [migrations.RunPython(add_permissions, remove_permissions)]
