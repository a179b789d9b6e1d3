-- Executions: one row per accepted run, the source of truth for its state.
-- The apalis job only says "run execution X"; everything the worker needs is
-- here, including the prompt snapshot taken at submission, so history
-- survives edits and deletion of the agent. agent_id is therefore not a
-- foreign key; tenant_id is.

CREATE TABLE executions (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    agent_id      uuid NOT NULL,
    agent_name    text COLLATE "C" NOT NULL,
    model         text NOT NULL,
    task          text NOT NULL,
    request       jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    provider      text,
    attempts      integer NOT NULL DEFAULT 0,
    output        text,
    tool_calls    jsonb NOT NULL DEFAULT '[]',
    error_code    text,
    error_message text,
    input_tokens  integer,
    output_tokens integer,
    request_id    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    -- A terminal row always says when it ended; a failed one always says why.
    CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CHECK ((status IN ('failed', 'cancelled')) = (error_code IS NOT NULL))
);

-- The list queries: newest first, optionally by agent id or name, paged by
-- (created_at, id) so pages are stable.
CREATE INDEX executions_by_tenant ON executions (tenant_id, created_at DESC, id DESC);
CREATE INDEX executions_by_agent ON executions (tenant_id, agent_id, created_at DESC, id DESC);
CREATE INDEX executions_by_agent_name ON executions (tenant_id, agent_name, created_at DESC, id DESC);

-- The sweeper looks only at unfinished rows.
CREATE INDEX executions_unfinished ON executions (started_at)
    WHERE status IN ('queued', 'running');

-- Idempotency-Key: a key is kept 24 hours per tenant, then forgotten. An
-- expired row is replaced in place by the next submission with that key.
CREATE TABLE idempotency_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key          text NOT NULL,
    fingerprint  text NOT NULL,
    execution_id uuid NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
