//! The stage table of a run: where the server's turns spent their time, from its
//! `sara_turn_stage_seconds{stage}` histograms (see `sara_actors::engine::TURN_STAGES`),
//! read from `/metrics` before and after the load so that only this run's turns count, also
//! against a running server (`--url`). Quantiles are read off the buckets as Prometheus's
//! `histogram_quantile` does (linear inside a bucket); the mean is exact.

use std::collections::BTreeMap;

use serde::Serialize;

/// The histogram family the table is made of.
const FAMILY: &str = "sara_turn_stage_seconds";

/// One stage's histogram as `/metrics` showed it: cumulative counts per upper bound
/// (seconds, `+Inf` last), the sum of seconds and the count.
#[derive(Clone, Debug, Default, PartialEq)]
struct Series {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

/// Every stage's histogram at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot(BTreeMap<String, Series>);

/// One row of the stage table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageFigures {
    /// How many turns went through this stage in the run (`load` and `calendar` only
    /// happen on some turns).
    pub turns: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl std::fmt::Display for StageFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mean {:.3} / p50 {:.3} / p99 {:.3} ms over {} turns",
            self.mean_ms, self.p50_ms, self.p99_ms, self.turns
        )
    }
}

/// Reads the stage histograms off `{base}/metrics`; `None` when the server does not answer
/// (the table is then left out, the run still counts).
pub async fn scrape(client: &reqwest::Client, base: &str) -> Option<Snapshot> {
    let response = client.get(format!("{base}/metrics")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    Some(parse(&response.text().await.ok()?))
}

/// The stage histograms in a Prometheus text exposition; other families are skipped.
fn parse(text: &str) -> Snapshot {
    let mut stages: BTreeMap<String, Series> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(FAMILY) else {
            continue;
        };
        let (suffix, rest) = rest.split_at(rest.find('{').unwrap_or(rest.len()));
        let Some((labels, value)) = rest.strip_prefix('{').and_then(|r| r.split_once('}')) else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| {
            labels.split(',').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        let Some(stage) = label("stage") else {
            continue;
        };
        let series = stages.entry(stage).or_default();
        match suffix {
            "_bucket" => {
                let bound = match label("le").as_deref() {
                    Some("+Inf") => f64::INFINITY,
                    Some(le) => match le.parse() {
                        Ok(le) => le,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                series.buckets.push((bound, value));
            }
            "_sum" => series.sum = value,
            "_count" => series.count = value,
            _ => {}
        }
    }
    for series in stages.values_mut() {
        series.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Snapshot(stages)
}

/// The figures of the turns between `before` and `after`, per stage in the engine's order;
/// stages no turn went through are left out.
pub fn table(before: &Snapshot, after: &Snapshot) -> BTreeMap<&'static str, StageFigures> {
    let mut rows = BTreeMap::new();
    for stage in sara_actors::engine::TURN_STAGES {
        let Some(now) = after.0.get(stage) else {
            continue;
        };
        let then = before.0.get(stage);
        let count = now.count - then.map_or(0.0, |t| t.count);
        if count <= 0.0 {
            continue;
        }
        let sum = now.sum - then.map_or(0.0, |t| t.sum);
        let buckets: Vec<(f64, f64)> = now
            .buckets
            .iter()
            .map(|&(bound, cumulative)| {
                let earlier = then
                    .and_then(|t| t.buckets.iter().find(|(b, _)| *b == bound))
                    .map_or(0.0, |(_, c)| *c);
                (bound, cumulative - earlier)
            })
            .collect();
        rows.insert(
            stage,
            StageFigures {
                turns: count as u64,
                mean_ms: round_ms(sum / count),
                p50_ms: round_ms(quantile(&buckets, 0.50)),
                p99_ms: round_ms(quantile(&buckets, 0.99)),
            },
        );
    }
    rows
}

/// `histogram_quantile` over cumulative buckets: linear inside the bucket the rank falls in,
/// the largest finite bound when it falls in `+Inf`.
fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return 0.0;
    };
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, cumulative) in buckets {
        if cumulative >= rank {
            if bound.is_infinite() {
                return lower.0;
            }
            let inside = cumulative - lower.1;
            let share = if inside > 0.0 {
                (rank - lower.1) / inside
            } else {
                1.0
            };
            return lower.0 + (bound - lower.0) * share;
        }
        lower = (bound, cumulative);
    }
    lower.0
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# HELP sara_turn_stage_seconds Time a turn spent in one stage.
# TYPE sara_turn_stage_seconds histogram
sara_turn_stage_seconds_bucket{stage="queue",le="0.001"} 10
sara_turn_stage_seconds_bucket{stage="queue",le="0.01"} 10
sara_turn_stage_seconds_bucket{stage="queue",le="+Inf"} 10
sara_turn_stage_seconds_sum{stage="queue"} 0.005
sara_turn_stage_seconds_count{stage="queue"} 10
sara_turns_total 10
"#;

    const AFTER: &str = r#"sara_turn_stage_seconds_bucket{le="0.001",stage="queue"} 60
sara_turn_stage_seconds_bucket{le="0.01",stage="queue"} 109
sara_turn_stage_seconds_bucket{le="+Inf",stage="queue"} 110
sara_turn_stage_seconds_sum{stage="queue"} 0.255
sara_turn_stage_seconds_count{stage="queue"} 110
sara_turn_stage_seconds_bucket{stage="commit",le="0.001"} 0
sara_turn_stage_seconds_bucket{stage="commit",le="0.01"} 4
sara_turn_stage_seconds_bucket{stage="commit",le="+Inf"} 4
sara_turn_stage_seconds_sum{stage="commit"} 0.02
sara_turn_stage_seconds_count{stage="commit"} 4
"#;

    #[test]
    fn the_table_counts_only_the_turns_between_the_two_scrapes() {
        let rows = table(&parse(BEFORE), &parse(AFTER));
        let queue = &rows["queue"];
        assert_eq!(queue.turns, 100);
        // (0.255 - 0.005) s over 100 turns.
        assert_eq!(queue.mean_ms, 2.5);
        // Rank 50 of 100 falls in the first bucket (50 of its 50): its bound.
        assert_eq!(queue.p50_ms, 1.0);
        // Rank 99 is the 49th of 49 in (0.001, 0.01]: its upper bound.
        assert_eq!(queue.p99_ms, 10.0);
        let commit = &rows["commit"];
        assert_eq!(commit.turns, 4);
        // Rank 2 of the 4 in (0.001, 0.01]: half way.
        assert_eq!(commit.p50_ms, 5.5);
        assert!(!rows.contains_key("lease"), "no turn went through it");
    }

    #[test]
    fn a_rank_in_the_open_bucket_gives_the_largest_finite_bound() {
        let buckets = [(0.001, 1.0), (0.01, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(&buckets, 0.99), 0.01);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn other_families_and_malformed_lines_are_skipped() {
        let text = "sara_turn_seconds_bucket{le=\"0.1\"} 3\nsara_turn_stage_seconds_bucket{stage=\"queue\",le=\"x\"} 1\nsara_turn_stage_seconds_count{stage=\"queue\"} nope\n";
        let snapshot = parse(text);
        assert_eq!(snapshot.0["queue"].buckets, Vec::new());
        assert_eq!(snapshot.0["queue"].count, 0.0);
        assert_eq!(snapshot.0.len(), 1);
    }
}
