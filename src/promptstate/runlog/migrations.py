"""Named, append-only schema migrations, recorded in ``schema_migrations``.

Never edit a shipped migration: add one. A migration that adds ``runs`` columns names
them, and takes each column's type from the one run schema (``models/run.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from promptstate.models.run import column_sql

__all__ = ["MIGRATIONS", "Migration", "add_run_columns"]


@dataclass(frozen=True)
class Migration:
    """One schema step: ``version`` (increasing), a ``name`` and its statements."""

    version: int
    name: str
    statements: tuple[str, ...]


def add_run_columns(version: int, name: str, *columns: str) -> Migration:
    """A migration adding ``runs`` columns with their types from the run schema."""
    return Migration(
        version,
        name,
        tuple(f"ALTER TABLE runs ADD COLUMN IF NOT EXISTS {c} {column_sql(c)}" for c in columns),
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "create_runs_prompts_scoped_variables",
        (
            """CREATE TABLE IF NOT EXISTS runs (
                run_id TEXT PRIMARY KEY,
                instance_id TEXT,
                prompt_id TEXT,
                prompt_version TEXT,
                provider TEXT,
                model TEXT,
                status TEXT NOT NULL,
                variables JSON,
                messages JSON,
                response TEXT,
                error TEXT,
                input_tokens BIGINT,
                output_tokens BIGINT,
                latency_ms DOUBLE,
                ttft_ms DOUBLE,
                started_at TIMESTAMP,
                finished_at TIMESTAMP,
                sweep_id TEXT,
                action_index BIGINT,
                state_hash TEXT,
                attempts INTEGER,
                cost_usd DOUBLE,
                cache_key TEXT,
                cache_hit BOOLEAN,
                settings JSON,
                session_id TEXT,
                pid INTEGER,
                hostname TEXT
            )""",
            """CREATE TABLE IF NOT EXISTS prompts (
                prompt_id TEXT NOT NULL,
                version TEXT NOT NULL,
                definition JSON NOT NULL,
                source TEXT,
                created_at TIMESTAMP,
                PRIMARY KEY (prompt_id, version)
            )""",
            """CREATE TABLE IF NOT EXISTS user_variables (
                user_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT,
                updated_at TIMESTAMP, PRIMARY KEY (user_id, name))""",
            """CREATE TABLE IF NOT EXISTS org_variables (
                org_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT,
                updated_at TIMESTAMP, PRIMARY KEY (org_id, name))""",
            """CREATE TABLE IF NOT EXISTS project_variables (
                project_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT,
                updated_at TIMESTAMP, PRIMARY KEY (project_id, name))""",
        ),
    ),
    add_run_columns(2, "add_runs_error_type", "error_type"),
)

# -- evaluations (issue 14): plain portable DDL (TEXT, DOUBLE, BOOLEAN, TIMESTAMP, JSON) --
MIGRATIONS += (
    Migration(
        3,
        "create_datasets",
        (
            """CREATE TABLE IF NOT EXISTS datasets (
                dataset_id TEXT NOT NULL,
                version TEXT NOT NULL,
                name TEXT NOT NULL,
                n_rows BIGINT,
                columns JSON,
                variables JSON,
                metadata JSON,
                expected_column TEXT,
                created_at TIMESTAMP,
                PRIMARY KEY (dataset_id, version)
            )""",
            """CREATE TABLE IF NOT EXISTS dataset_rows (
                dataset_id TEXT NOT NULL,
                version TEXT NOT NULL,
                row_id TEXT NOT NULL,
                position BIGINT NOT NULL,
                data JSON,
                PRIMARY KEY (dataset_id, version, position)
            )""",
        ),
    ),
    Migration(
        4,
        "create_scores",
        (
            """CREATE TABLE IF NOT EXISTS scores (
                score_id TEXT PRIMARY KEY,
                run_id TEXT NOT NULL,
                scorer TEXT NOT NULL,
                scorer_version TEXT,
                value DOUBLE,
                passed BOOLEAN,
                reason TEXT,
                source TEXT NOT NULL,
                judge_run_id TEXT,
                eval_id TEXT,
                errored BOOLEAN,
                session_id TEXT,
                created_at TIMESTAMP
            )""",
        ),
    ),
    Migration(
        5,
        "create_evals",
        (
            """CREATE TABLE IF NOT EXISTS evals (
                eval_id TEXT PRIMARY KEY,
                name TEXT,
                dataset_id TEXT,
                dataset_version TEXT,
                config JSON,
                session_id TEXT,
                created_at TIMESTAMP
            )""",
            """CREATE TABLE IF NOT EXISTS eval_runs (
                eval_id TEXT NOT NULL,
                cell BIGINT NOT NULL,
                run_id TEXT,
                row_id TEXT,
                position BIGINT,
                prompt_id TEXT,
                prompt_version TEXT,
                model TEXT,
                repetition INTEGER,
                status TEXT,
                error TEXT,
                PRIMARY KEY (eval_id, cell)
            )""",
        ),
    ),
)
