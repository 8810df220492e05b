//! `/api/v1/retl/...`: reverse ETL connections, models, mappings and runs. (Being built.)

use std::sync::Arc;

use axum::http::Method;
use utoipa_axum::router::OpenApiRouter;

use crate::app::App;
use crate::store::Role;

/// Who may call the reverse ETL routes (merged into `admin::ACCESS` lookups).
pub static ACCESS: &[(Method, &str, Role, &str)] = &[];

/// The reverse ETL routes, registered with their OpenAPI descriptions.
pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
}
