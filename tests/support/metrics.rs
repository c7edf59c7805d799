//! A Prometheus recorder of a test's own, for the test files that read the layer's metrics
//! (included with `#[path]`).
#![allow(dead_code)]

use std::future::Future;

use metrics_exporter_prometheus::PrometheusHandle;

/// Runs `test` on a current-thread runtime with a Prometheus recorder of its own (every request
/// runs on this thread, which is the recorder's); answers the recorder's handle.
pub fn with_metrics(test: impl Future<Output = ()>) -> PrometheusHandle {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(test)
    });
    handle
}
