-- Tenants and their API keys. A key is stored only as its SHA-256 hash, with
-- a short prefix kept in clear so people can tell keys apart and revoke one.

CREATE TABLE tenants (
    id                  uuid PRIMARY KEY,
    name                text COLLATE "C" NOT NULL,
    run_limit           integer NOT NULL DEFAULT 60 CHECK (run_limit > 0),
    run_window_secs     integer NOT NULL DEFAULT 60 CHECK (run_window_secs > 0),
    request_limit       integer NOT NULL DEFAULT 6000 CHECK (request_limit > 0),
    request_window_secs integer NOT NULL DEFAULT 60 CHECK (request_window_secs > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_name_key UNIQUE (name)
);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_hash    text NOT NULL,
    prefix      text COLLATE "C" NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CONSTRAINT api_keys_hash_key UNIQUE (key_hash),
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix)
);

CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);
