//! The stop request of a process without an HTTP server (projector, fanout): Ctrl-C (SIGINT)
//! or SIGTERM, which is what container runtimes and Kubernetes send. Processes with the API
//! leave signals to actix, which drains in-flight requests on SIGTERM.

/// Resolves when the process is asked to stop.
pub async fn requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "SigtermHandlerUnavailable");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("ShutdownRequested");
}
