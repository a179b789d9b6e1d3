//! PostgreSQL access: migrations, tenants, keys, tools, agents, executions and the job queue.
