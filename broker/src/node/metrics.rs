//! Prometheus text-format metrics: counters, request latency histograms, and gauges computed
//! from partition state when scraped. Served over plain HTTP/1.1 at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bounds (ms) of the request latency histogram buckets.
const LATENCY_BUCKETS_MS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
];
/// Longest HTTP request head read from a scraper.
const HTTP_REQUEST_BYTES_MAX: usize = 8 * 1024;

/// One latency histogram.
#[derive(Clone, Debug, Default)]
struct Histogram {
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS_MS`].
    buckets: [u64; LATENCY_BUCKETS_MS.len()],
    /// Observations.
    count: u64,
    /// Sum of observations, ms.
    sum_ms: f64,
}

/// The node's counters and histograms (gauges are computed at scrape time by the caller).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Counters by full name (labels included), so rendering is ordered.
    counters: Mutex<BTreeMap<String, u64>>,
    /// Request latency by API name.
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    /// Adds `by` to the counter `name` (a Prometheus series name, labels allowed).
    pub fn count(&self, name: &str, by: u64) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *counters.entry(name.to_string()).or_insert(0) += by;
    }

    /// The counter `name`'s value (0 when never counted).
    pub fn counter(&self, name: &str) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters.get(name).copied().unwrap_or(0)
    }

    /// Records one request's latency.
    pub fn observe_latency(&self, api: &str, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let histogram = latency.entry(api.to_string()).or_default();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS_MS) {
            if ms <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum_ms += ms;
    }

    /// Renders counters, histograms and the caller's gauges in Prometheus text format.
    pub fn render(&self, gauges: &[(String, f64)]) -> String {
        let mut out = String::new();
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (name, value) in counters {
            let _ = writeln!(out, "{name} {value}");
        }
        for (name, value) in gauges {
            let _ = writeln!(out, "{name} {value}");
        }
        let latency = self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !latency.is_empty() {
            out.push_str("# TYPE rill_request_latency_ms histogram\n");
        }
        for (api, histogram) in latency {
            for (count, bound) in histogram.buckets.iter().zip(LATENCY_BUCKETS_MS) {
                let _ = writeln!(
                    out,
                    "rill_request_latency_ms_bucket{{api=\"{api}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "rill_request_latency_ms_bucket{{api=\"{api}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "rill_request_latency_ms_sum{{api=\"{api}\"}} {}",
                histogram.sum_ms
            );
            let _ = writeln!(
                out,
                "rill_request_latency_ms_count{{api=\"{api}\"}} {}",
                histogram.count
            );
        }
        out
    }
}

/// Serves `GET /metrics` with the body `render()` produces at each scrape, until the task is
/// dropped. Anything else gets 404; a malformed or oversized request closes the connection.
pub async fn serve<F>(listener: TcpListener, render: F)
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let render = std::sync::Arc::new(render);
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut head = vec![0_u8; HTTP_REQUEST_BYTES_MAX];
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head)).await;
            let Ok(Ok(n)) = read else { return };
            let text = String::from_utf8_lossy(&head[..n]);
            let (status, body) = if text.starts_with("GET /metrics") {
                ("200 OK", render())
            } else {
                ("404 Not Found", String::from("not found\n"))
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _best_effort = stream.write_all(response.as_bytes()).await;
            let _best_effort = stream.flush().await;
        });
    }
}
