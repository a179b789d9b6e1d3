//! `GET /models`: the supported models and whether each runs live.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use domain::{Model, ModelMode, Provider};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::no_query;

/// Whether each model runs live, as this process's provider keys say.
/// Workers decide for real: give both processes the same keys.
#[derive(Debug, Clone)]
pub struct ModelCatalog {
    modes: Vec<(Model, ModelMode)>,
}

impl ModelCatalog {
    /// A catalog asking `mode` about every supported model.
    pub fn new(mode: impl Fn(Model) -> ModelMode) -> Self {
        Self {
            modes: Model::ALL
                .into_iter()
                .map(|model| (model, mode(model)))
                .collect(),
        }
    }

    /// Whether runs of `model` reach its provider or the simulated one.
    pub fn mode(&self, model: Model) -> ModelMode {
        self.modes
            .iter()
            .find(|(known, _)| *known == model)
            .map_or(ModelMode::Simulated, |(_, mode)| *mode)
    }
}

/// A supported model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    /// The name to send as `model`.
    id: Model,
    /// Whose API serves it.
    provider: Provider,
    /// `live` when credentials are configured, else `simulated`.
    mode: ModelMode,
}

/// The supported models.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// Every supported model.
    items: Vec<ModelInfo>,
}

/// List the models a run may ask for.
#[utoipa::path(get, path = "/models", tag = "runs",
    operation_id = "list_models",
    responses((status = 200, description = "The supported models", body = ModelList)))]
pub async fn list(State(state): State<AppState>, uri: Uri) -> Result<Json<ModelList>, ApiError> {
    no_query(&uri)?;
    let items = Model::ALL
        .into_iter()
        .map(|model| ModelInfo {
            id: model,
            provider: model.provider(),
            mode: state.catalog.mode(model),
        })
        .collect();
    Ok(Json(ModelList { items }))
}
