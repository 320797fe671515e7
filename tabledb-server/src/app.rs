//! The router, and serving it until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use tabledb::{Database, PersistOptions, ProcedureRegistry, Runtime};
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::ServerConfig;
use crate::middleware;
use crate::routes;
use crate::state::AppState;

/// Every route, with the layers around them (outermost first): request context (id, log,
/// timeout, internal errors), panic catching, authentication, rate limiting, body limit.
pub fn router(state: AppState) -> Router {
    let body_limit = state.cfg.max_body_bytes;
    Router::new()
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(routes::openapi))
        .route("/types", get(routes::list_types).post(routes::create_type))
        .route("/types/{name}", get(routes::get_type))
        .route("/tables", get(routes::list_tables))
        .route("/tables/{name}", get(routes::get_table).post(routes::create_table).delete(routes::drop_table))
        .route("/tables/{name}/fields", post(routes::add_field))
        .route("/tables/{name}/fields/{field}", get(routes::get_field).delete(routes::remove_field))
        .route("/tables/{name}/compact", post(routes::compact))
        .route("/tables/{name}/records", get(routes::list_records).post(routes::create_records))
        .route(
            "/tables/{name}/records/{id}",
            get(routes::get_record)
                .put(routes::put_record)
                .patch(routes::patch_record)
                .delete(routes::delete_record),
        )
        .route("/relations", get(routes::list_relations).post(routes::create_relation))
        .route("/relations/{id}", get(routes::get_relation).delete(routes::drop_relation))
        .route("/rpc", get(routes::list_procedures))
        .route("/rpc/{name}", post(routes::call_procedure))
        .route_layer(axum::middleware::from_fn(middleware::no_query_parameters))
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn_with_state(state.clone(), middleware::rate_limit))
        .layer(from_fn_with_state(state.clone(), middleware::auth))
        .layer(CatchPanicLayer::new())
        .layer(from_fn_with_state(state.clone(), middleware::context))
        .with_state(state)
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the database in {dir}: {source}")]
    Open { dir: String, source: tabledb::Error },
    #[error("cannot start the runtime: {0}")]
    Runtime(#[from] tabledb::runtime::StartError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("serving failed: {0}")]
    Serve(std::io::Error),
}

/// A server: a configuration, the procedures it offers, and optionally a database the
/// program already opened (with typed tables).
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    procedures: ProcedureRegistry,
    database: Option<Database>,
}

impl Server {
    pub fn new(config: ServerConfig) -> Server {
        Server { config, procedures: ProcedureRegistry::new(), database: None }
    }

    /// The procedures to serve at `/rpc`.
    pub fn procedures(mut self, procedures: ProcedureRegistry) -> Server {
        self.procedures = procedures;
        self
    }

    /// Serves this database instead of opening `config.data_dir`.
    pub fn database(mut self, db: Database) -> Server {
        self.database = Some(db);
        self
    }

    /// Opens the database, starts the runtime, listens, and serves until `shutdown`
    /// completes; then stops taking requests, lets those in progress finish, syncs the log
    /// and (by default) writes a checkpoint. `on_listening` receives the bound address.
    pub async fn serve(
        self,
        on_listening: impl FnOnce(SocketAddr),
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let cfg = self.config;
        let db = match self.database {
            Some(db) => db,
            None => {
                let options = PersistOptions { durability: cfg.durability, ..PersistOptions::default() };
                let dir = cfg.data_dir.clone();
                tokio::task::spawn_blocking(move || {
                    Database::open_with(&dir, tabledb::Config::default(), options)
                })
                .await
                .map_err(|e| ServerError::Serve(std::io::Error::other(e)))?
                .map_err(|source| ServerError::Open { dir: cfg.data_dir.display().to_string(), source })?
            }
        };
        if let Some(report) = db.recovery_report() {
            tracing::info!(
                tables = report.tables,
                records = report.records,
                log_entries = report.log_entries,
                ms = report.duration.as_millis() as u64,
                "database opened"
            );
        }
        let runtime = Runtime::start(db, self.procedures, cfg.runtime_config())?;
        let addr = SocketAddr::new(cfg.host, cfg.port);
        if cfg.api_keys.is_empty() && !cfg.host.is_loopback() {
            tracing::warn!(%addr, "listening beyond localhost without API keys: anyone who can reach it can change the data");
        }
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(ServerError::Serve)?;
        tracing::info!(addr = %local, tick_hz = cfg.tick_hz, durability = %cfg.durability, "listening");
        on_listening(local);
        // Every request ends within the request timeout, and a connection must send a whole
        // request's headers within it too (a client that stalls mid-headers is closed); at
        // shutdown, connections still open after that long are closed.
        let grace = cfg.request_timeout + std::time::Duration::from_secs(1);
        let header_timeout = cfg.request_timeout;
        let state = AppState::new(runtime.handle(), cfg);
        let app = router(state);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let served: std::io::Result<()> = loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) if is_connection_error(&e) => continue,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, as a busy server must not
                        // spin, and go on serving the connections it has.
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break Ok(()),
            };
            let app = app.clone();
            let service =
                hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    tower::ServiceExt::oneshot(app.clone(), req)
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
            });
        };
        drop(listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(grace) => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "connections still open after the grace period; closing them");
            }
        }
        tracing::info!("shutting down: finishing the tick, syncing the log");
        tokio::task::spawn_blocking(move || runtime.shutdown())
            .await
            .map_err(|e| ServerError::Serve(std::io::Error::other(e)))?;
        served.map_err(ServerError::Serve)
    }
}

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    {
        let ctrl_c = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = term => {},
        }
    }
}
