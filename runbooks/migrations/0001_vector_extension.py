from django.db import migrations
from django.db.utils import DatabaseError


class CreateVectorExtension(migrations.operations.base.Operation):
    """CREATE EXTENSION vector, failing with instructions when the server lacks pgvector."""

    reversible = True

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
            if cursor.fetchone():
                return
            cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            if not cursor.fetchone():
                raise DatabaseError(
                    "The PostgreSQL server has no pgvector extension. Install it on the server "
                    "(for example the postgresql-NN-pgvector package, or the pgvector/pgvector image) "
                    "or unset DATABASE_URL to use the embedded PostgreSQL, which includes it."
                )
            try:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except DatabaseError as exc:
                raise DatabaseError(
                    f"Could not run CREATE EXTENSION vector ({exc}). Ask a superuser to run it once in "
                    "this database, or grant the migrating role the right to create extensions."
                ) from exc

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def describe(self):
        return "Create the pgvector extension"


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [CreateVectorExtension()]
