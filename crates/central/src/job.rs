//! The consensus pass: load what changed from PostgreSQL into a [`Ledger`], let the engine
//! decide, write the decisions back — all in one transaction held under an advisory lock, so
//! among replicas exactly one runs it at a time and LAPIs never read half a pass.

use crate::consensus::{Engine, Ledger};
use crate::db::Db;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// IPs scored.
    pub evaluated: usize,
    /// Newly listed.
    pub listed: usize,
    /// Delisted.
    pub delisted: usize,
    /// Machines credited with confirmations.
    pub credited: usize,
}

/// The pass's memory between runs: how far reports were read.
#[derive(Debug, Default)]
pub struct Job {
    since: i64,
}

/// Reports are re-read with this margin: a signal transaction that started before the previous
/// pass may commit after it with an older `updated_at`. Scoring an IP twice is harmless.
const MARGIN_MS: i64 = 60_000;

impl Job {
    /// Runs one pass at `now`; `None` when another replica holds the job.
    pub async fn run(
        &mut self,
        db: &Db,
        engine: &Engine,
        now: i64,
    ) -> Result<Option<PassReport>, sqlx::Error> {
        let Some(mut tx) = db.begin_job().await? else {
            return Ok(None);
        };
        let machines = Db::machine_stats(&mut tx).await?;
        let ips = Db::ips_to_evaluate(&mut tx, self.since - MARGIN_MS).await?;
        let mut ledger: Ledger = Db::load_ips(&mut tx, &ips).await?;
        ledger.machines = machines;
        let out = ledger.evaluate_ips(engine, &ips, now);
        Db::apply_outcome(&mut tx, &out, now).await?;
        tx.commit().await?;
        self.since = now;
        let listed = out
            .changes
            .iter()
            .filter(|c| matches!(c, crate::consensus::Change::Listed { .. }))
            .count();
        Ok(Some(PassReport {
            evaluated: ips.len(),
            listed,
            delisted: out.changes.len() - listed,
            credited: out.credits.len(),
        }))
    }
}
