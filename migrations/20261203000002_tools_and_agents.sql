-- Tools, agents and the links between them. Every row carries tenant_id and
-- every foreign key includes it, so no row can link across tenants even if a
-- query forgets to filter. Names compare byte-wise (COLLATE "C"): exact,
-- case-sensitive, and listed in a stable order on any server locale.

CREATE TABLE tools (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    name        text COLLATE "C" NOT NULL,
    description text NOT NULL,
    parameters  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT tools_name_key UNIQUE (tenant_id, name)
);

CREATE TABLE agents (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    name         text COLLATE "C" NOT NULL,
    role         text NOT NULL,
    description  text NOT NULL,
    instructions text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT agents_name_key UNIQUE (tenant_id, name)
);

CREATE TABLE agent_tools (
    tenant_id uuid NOT NULL,
    agent_id  uuid NOT NULL,
    tool_id   uuid NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, tool_id),
    CONSTRAINT agent_tools_agent_fkey FOREIGN KEY (tenant_id, agent_id)
        REFERENCES agents (tenant_id, id) ON DELETE CASCADE,
    -- RESTRICT: a tool still used by an agent cannot be deleted.
    CONSTRAINT agent_tools_tool_fkey FOREIGN KEY (tenant_id, tool_id)
        REFERENCES tools (tenant_id, id) ON DELETE RESTRICT
);

CREATE INDEX agent_tools_by_tool ON agent_tools (tenant_id, tool_id);
