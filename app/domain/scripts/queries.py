"""Plain SQL for the scripts paths that run most: reading one script, creating one.

They go straight to the asyncpg driver in single statements (see ``app.lib.db.statements``): no
ORM objects, no BEGIN/COMMIT round trips, and the audit row and lifecycle event of a creation
are data-modifying CTEs of the same statement, so they commit with it.
"""

from __future__ import annotations

SCRIPT_COLUMNS = (
    "id, tenant_id, name, slug, description, status, active_version_id, latest_version, labels, "
    "intents, language_codes, embedding_key, created_by_id, updated_by_id, created_at, updated_at"
)

# A script and its active version (columns prefixed ``v_``), or no row.
GET_DETAIL = f"""
SELECT {", ".join(f"s.{c.strip()}" for c in SCRIPT_COLUMNS.split(","))},
       v.id AS v_id, v.tenant_id AS v_tenant_id, v.script_id AS v_script_id, v.version AS v_version,
       v.graph_json AS v_graph_json, v.variables_def AS v_variables_def, v.changelog AS v_changelog,
       v.is_published AS v_is_published, v.created_by_id AS v_created_by_id, v.created_at AS v_created_at
FROM scripts s LEFT JOIN script_versions v ON v.id = s.active_version_id
WHERE s.id = $1 AND s.tenant_id = $2
"""

# Creates a DRAFT script, its CREATE audit entry and its Script.Created event; no row when the
# tenant already has the slug. Parameters: $1 id, $2 tenant, $3 name, $4 slug, $5 description,
# $6 labels, $7 intents, $8 language codes, $9 embedding key, $10 actor, $11 now,
# $12 audit id, $13 correlation id.
CREATE_SCRIPT = f"""
WITH created AS (
    INSERT INTO scripts (id, tenant_id, name, slug, description, status, latest_version, labels, intents,
                         language_codes, embedding_key, created_by_id, updated_by_id, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, 'DRAFT', 0, $6, $7, $8, $9, $10, $10, $11, $11)
    ON CONFLICT ON CONSTRAINT uq_scripts_tenant_slug DO NOTHING
    RETURNING {SCRIPT_COLUMNS}
), audit AS (
    INSERT INTO audit_log (id, tenant_id, script_id, action, actor_id, created_at, updated_at)
    SELECT $12, tenant_id, id, 'CREATE', $10, $11, $11 FROM created
), event AS (
    INSERT INTO events (tenant_id, event, correlation_id, success, payload)
    SELECT tenant_id, 'Script.Created', $13, true,
           jsonb_build_object('scriptId', id, 'slug', slug, 'name', name, 'actorId', $10::text)
    FROM created
)
SELECT * FROM created
"""
