//! One process's sink for blocked-call reports: the control plane's store
//! itself, with the lines the proxy would send a control plane in a fleet.

use async_trait::async_trait;
use ipgate_control::store::blocked::BlockedReport;
use ipgate_control::store::Store;

pub struct StoreSink(pub Store);

#[async_trait]
impl ipgate_proxy::blocked_report::Sink for StoreSink {
    async fn send(&self, lines: Vec<serde_json::Value>) -> Result<(), String> {
        let reports: Vec<BlockedReport> = lines
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        self.0
            .add_blocked_calls(&reports)
            .await
            .map_err(|e| e.to_string())
    }
}
