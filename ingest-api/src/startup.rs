//! Wiring: the routes under the base path ([`configure`]), and the HTTP server on a listener
//! ([`build_server`], [`build_tls_server`], [`Application`]), in the zero-to-production style: `main` and tests build
//! the same way, tests on port 0.
//!
//! # Examples
//! ```no_run
//! # async fn run(state: scimflow_ingest_api::ApiState) -> std::io::Result<()> {
//! let listener = std::net::TcpListener::bind("127.0.0.1:8080")?;
//! let application = scimflow_ingest_api::Application::build(listener, state)?;
//! println!("SCIM API on port {}", application.port());
//! application.run_until_stopped().await
//! # }
//! ```

use crate::context::trace_request;
use crate::observe;
use crate::routes::{self, bulk, discovery, history, list, members, resources};
use crate::state::ApiState;
use actix_web::body::BoxBody;
use actix_web::dev::Server;
use actix_web::dev::ServiceRequest;
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpServer, web};
use scimflow_core::ResourceKind;
use std::net::TcpListener;

/// Registers the SCIM API under `state.config.base_path` on an actix `App` or scope:
/// `App::new().configure(configure(state))`, and the operational endpoints `/healthz`,
/// `/readyz` and `/metrics` at the root (registered first, so they win even when the base path
/// is `/`).
pub fn configure(state: ApiState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config: &mut web::ServiceConfig| {
        let base_path = state.config.normalized_base_path();
        let (ready_state, metrics_state, observed) = (state.clone(), state.clone(), state.clone());
        config
            .service(web::resource("/healthz").route(web::get().to(observe::healthz)))
            .service(
                web::resource("/readyz").route(web::get().to(move || observe::readyz(ready_state.clone()))),
            )
            .service(
                web::resource("/metrics")
                    .route(web::get().to(move || observe::metrics(metrics_state.clone()))),
            );
        let data = web::Data::new(state);
        // Before the SCIM scope, which would otherwise take `/admin` when the base path is `/`.
        config.service(history::admin_scope(data.clone()));
        config.service(
            web::scope(&base_path)
                .app_data(data)
                // Registered before the tracing middleware, so it runs inside the request span
                // and a 429 still gets a request id.
                .wrap(from_fn(move |request: ServiceRequest, next: Next<BoxBody>| {
                    observe::observe_request(observed.clone(), request, next)
                }))
                .wrap(from_fn(trace_request))
                .service(resource_type_scope("/Users", ResourceKind::User))
                .service(resource_type_scope("/Groups", ResourceKind::Group))
                .service(single("/.search").route(web::post().to(list::search_root)))
                .service(single("/Bulk").route(web::post().to(bulk::bulk)))
                .service(
                    single("/ServiceProviderConfig").route(web::get().to(discovery::service_provider_config)),
                )
                .service(single("/ResourceTypes").route(web::get().to(discovery::resource_types)))
                .service(single("/ResourceTypes/{name}").route(web::get().to(discovery::resource_type)))
                .service(single("/Schemas").route(web::get().to(discovery::schemas)))
                .service(single("/Schemas/{id}").route(web::get().to(discovery::schema)))
                .service(web::resource(["/Me", "/Me/", "/Me/{rest:.*}"]).to(discovery::me))
                .default_service(web::to(routes::unknown_endpoint)),
        );
    }
}

/// A resource (with and without a trailing slash) whose unsupported methods get a SCIM 405.
fn single(path: &str) -> actix_web::Resource {
    let with_slash = format!("{path}/");
    web::resource([path.to_owned(), with_slash]).default_service(web::to(routes::method_not_allowed))
}

/// `/Users` or `/Groups`: one set of handlers, told the resource type through app data.
fn resource_type_scope(path: &str, kind: ResourceKind) -> actix_web::Scope {
    web::scope(path)
        .app_data(kind)
        .service(
            web::resource(["", "/"])
                .route(web::post().to(resources::create))
                .route(web::get().to(list::list))
                .default_service(web::to(routes::method_not_allowed)),
        )
        .service(single("/.search").route(web::post().to(list::search)))
        .service(
            single("/{id}")
                .route(web::get().guard(history::AtQuery).to(history::tenant_resource_at))
                .route(web::get().to(resources::get))
                .route(web::put().to(resources::replace))
                .route(web::patch().to(resources::patch))
                .route(web::delete().to(resources::delete)),
        )
        .service(
            single("/{id}/members")
                .route(web::get().guard(history::AtQuery).to(history::tenant_members_at))
                .route(web::get().to(members::members)),
        )
        .service(single("/{id}/history").route(web::get().to(history::tenant_history)))
}

/// An HTTP server serving the SCIM API on `listener` (already bound; port 0 for tests).
///
/// On SIGINT/SIGTERM (or [`ServerHandle::stop(true)`](actix_web::dev::ServerHandle::stop)) it
/// stops accepting connections and lets in-flight requests finish for up to
/// [`ApiConfig::shutdown_timeout`](crate::ApiConfig::shutdown_timeout): a write already on the
/// log still gets its outcome answered.
pub fn build_server(listener: TcpListener, state: ApiState) -> std::io::Result<Server> {
    build_server_with_tls(listener, state, None)
}

/// [`build_server`] speaking HTTPS only: a plain-HTTP request to the port fails its handshake.
/// `tls` comes from [`tls::server_config`](crate::tls::server_config).
pub fn build_tls_server(
    listener: TcpListener,
    state: ApiState,
    tls: rustls::ServerConfig,
) -> std::io::Result<Server> {
    build_server_with_tls(listener, state, Some(tls))
}

/// [`build_server`] with HTTPS when `tls` is given.
pub fn build_server_with_tls(
    listener: TcpListener,
    state: ApiState,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<Server> {
    let shutdown_secs = state.config.shutdown_timeout.as_secs();
    let server = HttpServer::new(move || App::new().configure(configure(state.clone())))
        .shutdown_timeout(shutdown_secs);
    let server = match tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls)?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}

/// The API server and the port it listens on.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub fn build(listener: TcpListener, state: ApiState) -> std::io::Result<Application> {
        let port = listener.local_addr()?.port();
        let server = build_server(listener, state)?;
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server gracefully (`handle.stop(true).await`).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
