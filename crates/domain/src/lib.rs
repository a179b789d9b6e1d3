//! The platform's vocabulary: validated values, the resources users see, the
//! job payload and the rules that need no I/O.
//!
//! Everything that crosses a boundary is parsed here once, so the rest of the
//! code cannot hold an invalid name, task or page. Nothing in this crate
//! touches the network, the database or the clock beyond `Utc::now`.

pub mod execution;
pub mod keys;
pub mod limits;
pub mod model;
pub mod paging;
pub mod prompt;
pub mod reference;
pub mod resources;
pub mod text;
pub mod time;

pub use execution::{ErrorCode, ExecutionError, ExecutionStatus, RunJob, ToolCall, Usage};
pub use keys::ApiKey;
pub use limits::{Limit, TenantLimits};
pub use model::{Model, ModelMode, Provider};
pub use paging::{Page, Paged};
pub use prompt::{Prompt, ToolSpec};
pub use reference::Ref;
pub use resources::{Agent, Execution, Tenant, Tool};
pub use text::{
    AgentName, Description, FieldError, Instructions, Parameters, Role, Task, ToolName,
};
