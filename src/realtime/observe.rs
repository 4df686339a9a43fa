//! Scoring one record against its account's state.

use super::features::{self, Past};
use super::record::Canonical;
use super::state::{Stream, before, insert};
use super::{Observed, StreamError};
use crate::detect::matrix::Matrix;

/// Why a record is not a triage candidate, as the file pipeline decides it
/// ([`crate::pipeline::triage_inputs`]): within tolerance, or routine for its account.
fn quiet_of(
    me: &Past,
    rec: &Canonical,
    own: Option<&crate::routine::Own>,
) -> Option<crate::detect::triage::Quiet> {
    use crate::detect::triage::Quiet;
    if rec.crit.is_empty() {
        return None;
    }
    if !me.is_break() {
        return Some(Quiet::WithinTolerance);
    }
    own.and_then(|o| o.routine).map(Quiet::Routine)
}

impl Stream {
    /// Reads one record, scores it against its account's earlier records and adds it to the
    /// state. Nothing changes when the record cannot be read.
    pub fn observe(
        &self,
        record: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Observed, StreamError> {
        let engine = self.engine();
        let rec = engine.reader.read(record)?;
        let me = Past::of(&rec);
        let mut shard = self.shard(&rec.key);
        if !shard.accounts.contains_key(&rec.key)
            && let Some((store, _)) = &self.backing
            && let Some(records) = self.fetch(store, &engine.profile, &rec.key)
        {
            shard.accounts.insert(rec.key.clone(), records);
        }
        shard.touch(&rec.key);
        let records = shard.accounts.entry(rec.key.clone()).or_default();
        let prev = before(records, rec.date);
        let own = engine.plan.own(&me, prev);
        let features = engine.plan.compute_with(&rec, &me, prev, own.as_ref());
        let x = Matrix::new(1, features.len(), features.clone()).map_err(StreamError::Model)?;
        let own_me = own.as_ref().and_then(|o| o.me().copied());
        let mut quiet = quiet_of(&me, &rec, own_me.as_ref());
        let mut proposed = false;
        if quiet.is_none()
            && !rec.crit.is_empty()
            && rec.dq.is_empty()
            && let Some(e) = engine
                .rules
                .explanation(&engine.profile, rec.comment.as_deref().unwrap_or(""))
        {
            quiet = Some(crate::detect::triage::Quiet::Explained);
            proposed = engine.rules.explained_auto_resolves(e);
        }
        let own_z = own_me.map_or(0.0, |o| o.own_z);
        let s = engine
            .bundle
            .score_triaged(
                &x,
                None,
                false,
                Some(crate::detect::model::Triage {
                    quiet: &[quiet],
                    own_z: &[own_z],
                    params: &engine.triage,
                    score_quiet: true,
                    shown: &[],
                }),
            )
            .map_err(|e| StreamError::Model(e.to_string()))?;
        let flag = s.flag[0];
        let run_context = (flag || proposed).then(|| features::run_context(&me, prev));
        let previous = prev.len();
        let break_age = engine.plan.break_age(&rec, &me, prev);
        insert(records, me, self.cap);
        if !shard.dirty.contains(&rec.key) {
            shard.dirty.insert(rec.key.clone());
        }
        self.evict(&mut shard, &engine.profile, &rec.key);
        drop(shard);
        let top_features =
            crate::detect::model::top_attributions(&s.attributions[0], &engine.plan.names, 3);
        Ok(Observed {
            record: rec,
            features,
            score: s.score[0],
            model_score: s.model[0],
            decision: s.decision[0],
            flag,
            proposed,
            quiet,
            own_z,
            cluster: s.cluster[0],
            top_features,
            run_context,
            previous,
            break_age,
            model_version: engine.version.clone(),
        })
    }
}
