//! The Redis connection pool: deadpool-redis connections, handed out without
//! a round trip while they are known to work, every call capped by a timeout.
//!
//! deadpool-redis's own manager PINGs each connection at every checkout, which
//! doubles the round trips of a rate-limit check. Here only a connection idle
//! for a while is PINGed; instead, a connection whose command got no answer
//! (an I/O error, or cut short by the timeout) is thrown away, with every idle
//! one besides.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{
    self, Metrics, Object, Pool, QueueMode, RecycleError, RecycleResult, Timeouts,
};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, ErrorKind, FromRedisValue, RedisError, ScriptInvocation};

use crate::LimiterError;

/// Connections kept per process; each carries one call at a time.
const POOL_SIZE: usize = 16;

/// A connection checked out this recently, on which Redis then answered, is
/// handed out again without a PING.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// A pool of connections to one Redis, and the timeout of each call.
#[derive(Clone)]
pub(crate) struct Connections {
    pool: Pool<Manager>,
    timeout: Duration,
}

/// Connects (through deadpool-redis) and decides which connections need a PING.
struct Manager {
    redis: deadpool_redis::Manager,
}

/// A pooled connection, and whether its last command left it in doubt.
struct Connection {
    redis: MultiplexedConnection,
    failed: bool,
}

impl Connections {
    /// A pool for the Redis at `url`; connects lazily, so only a malformed
    /// URL fails here.
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, LimiterError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let redis = deadpool_redis::Manager::new_with_config(url, config).map_err(unavailable)?;

        // Without a runtime deadpool cannot time out, and without timeouts it
        // waits for a connection forever: Redis down would become a hang.
        // Last in, first out keeps the busiest connections within TRUSTED_FOR.
        let pool = Pool::builder(Manager { redis })
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .queue_mode(QueueMode::Lifo)
            .timeouts(Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            })
            .build()
            .map_err(unavailable)?;

        Ok(Self { pool, timeout })
    }

    /// Runs a script (EVALSHA, loading it first if Redis answers NOSCRIPT).
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> Result<T, LimiterError> {
        self.bounded(async {
            let mut connection = self.checkout().await?;
            let answer = script.invoke_async(&mut connection.redis).await;

            self.check_in(&mut connection, answer)
        })
        .await
    }

    /// Runs one command.
    pub(crate) async fn query<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, LimiterError> {
        self.bounded(async {
            let mut connection = self.checkout().await?;
            let answer = command.query_async(&mut connection.redis).await;

            self.check_in(&mut connection, answer)
        })
        .await
    }

    async fn checkout(&self) -> Result<Object<Manager>, LimiterError> {
        let mut connection = self.pool.get().await.map_err(unavailable)?;

        // In doubt until Redis answers: a call cut short by the timeout leaves
        // it marked, and it goes back to the pool only to be discarded.
        connection.failed = true;
        Ok(connection)
    }

    fn check_in<T>(
        &self,
        connection: &mut Connection,
        answer: Result<T, RedisError>,
    ) -> Result<T, LimiterError> {
        connection.failed = answer.as_ref().is_err_and(leaves_connection_in_doubt);

        if connection.failed {
            // Most often Redis is restarting or the network is gone: the idle
            // connections are then as broken as this one, and would each fail
            // a check before being found out. New ones are cheap.
            self.pool.retain(|_, _| false);
        }
        answer.map_err(unavailable)
    }

    /// Caps a whole call (waiting for a connection, connecting, the command)
    /// at the timeout: each step has its own, but they add up.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, LimiterError>>,
    ) -> Result<T, LimiterError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(LimiterError::Unavailable(format!(
                    "no answer from redis within {} ms",
                    self.timeout.as_millis()
                )))
            })
    }
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections")
            .field("pool", &self.pool.status())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl managed::Manager for Manager {
    type Type = Connection;
    type Error = RedisError;

    async fn create(&self) -> Result<Connection, RedisError> {
        let redis = self.redis.create().await?;

        Ok(Connection {
            redis,
            failed: false,
        })
    }

    async fn recycle(
        &self,
        connection: &mut Connection,
        metrics: &Metrics,
    ) -> RecycleResult<RedisError> {
        if connection.failed {
            return Err(RecycleError::message("its last command left it in doubt"));
        }

        // Redis answered its last command; if that was a moment ago, it needs
        // no PING to prove it works, which saves a round trip per check.
        if metrics.last_used() < TRUSTED_FOR {
            return Ok(());
        }
        self.redis.recycle(&mut connection.redis, metrics).await
    }
}

/// An error reply proves the connection works (Redis answered on it); any
/// other failure (I/O, timeout, a garbled reply) does not.
fn leaves_connection_in_doubt(error: &RedisError) -> bool {
    !matches!(error.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

fn unavailable(error: impl fmt::Display) -> LimiterError {
    LimiterError::Unavailable(error.to_string())
}
