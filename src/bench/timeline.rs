//! The run over time (a soak): every interval one [`Sample`] of the turns that finished in
//! it (their own HDR histogram, so a bad minute is not averaged away by a long run), the
//! errors and the server's RSS; written as CSV and drawn as a small hand-written SVG (RSS and
//! p99 against minutes), so a reader sees at a glance whether RSS stays flat.

use std::fmt::Write as _;
use std::time::Duration;

use sara_actors::engine::Engine;

/// One interval of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Seconds from the start of the run to the end of this interval.
    pub elapsed_s: f64,
    /// How long this interval was (the last one may be shorter).
    pub length_s: f64,
    /// Turns that finished in this interval.
    pub turns: u64,
    pub turns_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Failed requests and dialogs that ended without a booking, in this interval.
    pub errors: u64,
    pub rss_mib: Option<f64>,
    /// Live conversation actors (in-process runs only).
    pub live: Option<u64>,
}

/// Where the RSS (and the number of live conversations) of the server comes from.
#[derive(Clone)]
pub enum Probe {
    /// Sara runs in this process: its VmRSS (load generator included) and its engine.
    InProcess(Engine),
    /// An external server's pid.
    Pid(u32),
    Nothing,
}

impl Probe {
    pub async fn read(&self) -> (Option<f64>, Option<u64>) {
        match self {
            Probe::InProcess(engine) => (
                super::rss_mib(None),
                Some(engine.stats().await.live_conversations as u64),
            ),
            Probe::Pid(pid) => (super::rss_mib(Some(*pid)), None),
            Probe::Nothing => (None, None),
        }
    }
}

/// How the load is sampled while it runs.
#[derive(Clone)]
pub struct Sampling {
    pub every: Duration,
    pub probe: Probe,
    /// Print each sample to stderr as it is taken (progress of a long run).
    pub progress: bool,
    /// Append each sample to this CSV file as it is taken (the header first).
    pub csv: Option<std::path::PathBuf>,
}

/// One stderr line per interval.
pub fn progress_line(s: &Sample) -> String {
    let mut line = format!(
        "[{:>7.1} s] {:>7} turns {:>7.0}/s  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  errors {}",
        s.elapsed_s, s.turns, s.turns_per_s, s.p50_ms, s.p99_ms, s.max_ms, s.errors
    );
    if let Some(rss) = s.rss_mib {
        let _ = write!(line, "  RSS {rss:.1} MiB");
    }
    if let Some(live) = s.live {
        let _ = write!(line, "  live {live}");
    }
    line
}

pub const CSV_HEADER: &str =
    "elapsed_s,interval_s,turns,turns_per_s,p50_ms,p99_ms,max_ms,errors,rss_mib,live";

/// The timeline as CSV (empty cells where a value is unknown).
pub fn csv(samples: &[Sample]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for s in samples {
        out.push_str(&csv_row(s));
    }
    out
}

/// The timeline written while a run goes on: the header when the file is created, then a
/// row per sample, so a soak stopped early (or killed) still leaves what it measured. A
/// failed write is said once on stderr and the file is given up (the whole timeline is
/// written again at the end of a run that finishes).
pub struct CsvSink {
    file: Option<tokio::fs::File>,
}

impl CsvSink {
    pub async fn create(path: Option<&std::path::Path>) -> CsvSink {
        let Some(path) = path else {
            return CsvSink { file: None };
        };
        let mut sink = CsvSink {
            file: tokio::fs::File::create(path)
                .await
                .inspect_err(|e| eprintln!("timeline {}: {e}", path.display()))
                .ok(),
        };
        sink.write(format!("{CSV_HEADER}\n")).await;
        sink
    }

    pub async fn push(&mut self, sample: &Sample) {
        self.write(csv_row(sample)).await;
    }

    async fn write(&mut self, line: String) {
        use tokio::io::AsyncWriteExt;
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let written = match file.write_all(line.as_bytes()).await {
            Ok(()) => file.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            eprintln!("timeline: {e}; no more rows are written while running");
            self.file = None;
        }
    }
}

/// One sample as a CSV line, newline included.
pub fn csv_row(s: &Sample) -> String {
    let opt = |v: Option<String>| v.unwrap_or_default();
    format!(
        "{:.1},{:.1},{},{:.1},{:.3},{:.3},{:.3},{},{},{}\n",
        s.elapsed_s,
        s.length_s,
        s.turns,
        s.turns_per_s,
        s.p50_ms,
        s.p99_ms,
        s.max_ms,
        s.errors,
        opt(s.rss_mib.map(|r| format!("{r:.1}"))),
        opt(s.live.map(|l| l.to_string())),
    )
}

/// What the summary table says about the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Trend {
    pub rss_first_mib: f64,
    pub rss_last_mib: f64,
    /// Mean RSS of the first and the last 10 % of the samples (at least one each).
    pub rss_first_tenth_mib: f64,
    pub rss_last_tenth_mib: f64,
    /// Least-squares slope of RSS over the second half of the run, MiB per minute: the first
    /// half includes the warm-up (conversations accumulate until the idle timeout passivates
    /// the first ones), the second half should be flat.
    pub rss_slope_second_half_mib_per_min: f64,
    pub rss_max_mib: f64,
}

pub fn trend(samples: &[Sample]) -> Option<Trend> {
    let rss: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| s.rss_mib.map(|r| (s.elapsed_s / 60.0, r)))
        .collect();
    let (first, last) = (rss.first()?, rss.last()?);
    let tenth = rss.len().div_ceil(10).max(1);
    let mean = |xs: &[(f64, f64)]| xs.iter().map(|(_, r)| r).sum::<f64>() / xs.len() as f64;
    let half = &rss[rss.len() / 2..];
    Some(Trend {
        rss_first_mib: first.1,
        rss_last_mib: last.1,
        rss_first_tenth_mib: mean(&rss[..tenth]),
        rss_last_tenth_mib: mean(&rss[rss.len() - tenth..]),
        rss_slope_second_half_mib_per_min: slope(half),
        rss_max_mib: rss.iter().map(|(_, r)| *r).fold(f64::MIN, f64::max),
    })
}

/// Least-squares slope of y over x; 0 with fewer than two distinct x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|(x, _)| x).sum::<f64>() / n;
    let my = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    if sxx <= f64::EPSILON { 0.0 } else { sxy / sxx }
}

/// The interval with the worst p99.
pub fn worst_p99(samples: &[Sample]) -> Option<&Sample> {
    samples
        .iter()
        .filter(|s| s.turns > 0)
        .max_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms))
}

/// The median of the intervals' p99 (what a typical interval looks like next to the worst).
pub fn median_p99(samples: &[Sample]) -> Option<f64> {
    let mut p99: Vec<f64> = samples
        .iter()
        .filter(|s| s.turns > 0)
        .map(|s| s.p99_ms)
        .collect();
    p99.sort_by(f64::total_cmp);
    p99.get(p99.len() / 2).copied()
}

/// A "nice" axis top (1, 2, 2.5 or 5 times a power of ten) at or above `max`, and its tick
/// step (a fifth or a quarter of it).
fn axis(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let power = 10f64.powf(max.log10().floor());
    for (m, ticks) in [(1.0, 5.0), (2.0, 4.0), (2.5, 5.0), (5.0, 5.0), (10.0, 5.0)] {
        // A run of 120.02 s ends on 2 minutes, not 2.5: a point 0.1 % past the top is
        // not visible.
        if m * power >= max * 0.999 || m == 10.0 {
            return (m * power, m * power / ticks);
        }
    }
    (max, max / 5.0)
}

/// Trims a tick label: "2", "2.5", "0.25".
fn label(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() { "0".into() } else { s.into() }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const WIDTH: f64 = 820.0;
const PANEL_HEIGHT: f64 = 200.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;

/// One panel: y from 0 (so a flat line looks flat, not a zoomed-in wiggle) to a nice top,
/// x in minutes, the series as one polyline.
fn panel(
    out: &mut String,
    top: f64,
    x_max: f64,
    points: &[(f64, f64)],
    y_label: &str,
    colour: &str,
) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let (y_top, y_step) = axis(points.iter().map(|(_, y)| *y).fold(0.0, f64::max));
    let (x_top, x_step) = axis(x_max);
    let px = |x: f64| LEFT + x / x_top * plot_w;
    let py = |y: f64| top + PANEL_HEIGHT - y / y_top * PANEL_HEIGHT;
    let bottom = top + PANEL_HEIGHT;
    // Grid and tick labels.
    let mut y = 0.0;
    while y <= y_top * 1.0001 {
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{v:.1}" x2="{x2:.1}" y2="{v:.1}" stroke="#ddd"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="end">{l}</text>"##,
            v = py(y),
            x2 = LEFT + plot_w,
            tx = LEFT - 6.0,
            ty = py(y) + 4.0,
            l = label(y)
        );
        y += y_step;
    }
    let mut x = 0.0;
    while x <= x_top * 1.0001 {
        let _ = writeln!(
            out,
            r##"<line x1="{v:.1}" y1="{bottom}" x2="{v:.1}" y2="{b2}" stroke="#333"/><text x="{v:.1}" y="{ty}" text-anchor="middle">{l}</text>"##,
            v = px(x),
            b2 = bottom + 5.0,
            ty = bottom + 18.0,
            l = label(x)
        );
        x += x_step;
    }
    // Axes.
    let _ = writeln!(
        out,
        r##"<polyline points="{LEFT},{top} {LEFT},{bottom} {r},{bottom}" fill="none" stroke="#333"/>"##,
        r = LEFT + plot_w
    );
    let _ = writeln!(
        out,
        r##"<text x="16" y="{cy:.1}" text-anchor="middle" transform="rotate(-90 16 {cy:.1})">{}</text>"##,
        escape(y_label),
        cy = top + PANEL_HEIGHT / 2.0
    );
    let coords: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
        .collect();
    let _ = writeln!(
        out,
        r##"<polyline class="series" points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"##,
        coords.join(" ")
    );
}

/// Two panels against minutes since the start: RSS (MiB) above, interval p99 (ms) below.
pub fn svg(samples: &[Sample], title: &str) -> String {
    let minutes = |s: &Sample| s.elapsed_s / 60.0;
    let rss: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| s.rss_mib.map(|r| (minutes(s), r)))
        .collect();
    let p99: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.turns > 0)
        .map(|s| (minutes(s), s.p99_ms))
        .collect();
    let x_max = samples.iter().map(minutes).fold(0.0, f64::max);
    let height = 40.0 + PANEL_HEIGHT + 50.0 + PANEL_HEIGHT + 50.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"##,
        WIDTH / 2.0,
        escape(title)
    );
    let first_top = 40.0;
    let second_top = first_top + PANEL_HEIGHT + 50.0;
    panel(
        &mut out,
        first_top,
        x_max,
        &rss,
        "server RSS (MiB)",
        "#1f77b4",
    );
    panel(
        &mut out,
        second_top,
        x_max,
        &p99,
        "p99 per interval (ms)",
        "#d62728",
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" text-anchor="middle">minutes since the start</text>"##,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        second_top + PANEL_HEIGHT + 38.0
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(minute: f64, rss: f64, p99: f64) -> Sample {
        Sample {
            elapsed_s: minute * 60.0,
            length_s: 10.0,
            turns: 100,
            turns_per_s: 10.0,
            p50_ms: 1.0,
            p99_ms: p99,
            max_ms: p99 * 2.0,
            errors: 0,
            rss_mib: Some(rss),
            live: Some(5),
        }
    }

    #[tokio::test]
    async fn the_sink_leaves_every_row_on_disk_as_it_is_taken() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("soak.csv");
        let samples = [sample(0.5, 100.0, 3.0), sample(1.0, 101.0, 4.0)];
        let mut sink = CsvSink::create(Some(&path)).await;
        sink.push(&samples[0]).await;
        let so_far = std::fs::read_to_string(&path).expect("the file exists while running");
        assert_eq!(so_far, csv(&samples[..1]));
        sink.push(&samples[1]).await;
        let all = std::fs::read_to_string(&path).expect("the file");
        assert_eq!(all, csv(&samples));
        // No path: nothing is written, and nothing fails.
        CsvSink::create(None).await.push(&samples[0]).await;
    }

    #[test]
    fn axes_end_on_round_numbers_above_the_data() {
        assert_eq!(axis(87.0), (100.0, 20.0));
        assert_eq!(axis(120.0), (200.0, 50.0));
        assert_eq!(axis(2.1), (2.5, 0.5));
        assert_eq!(axis(0.0), (1.0, 0.2));
        assert_eq!(axis(2.0003), (2.0, 0.5));
        assert_eq!(label(0.5), "0.5");
        assert_eq!(label(20.0), "20");
    }

    #[test]
    fn trend_compares_the_first_and_last_tenth_and_fits_the_second_half() {
        let samples: Vec<Sample> = (1..=20)
            .map(|i| {
                sample(
                    f64::from(i),
                    if i <= 10 { 50.0 + f64::from(i) } else { 80.0 },
                    5.0,
                )
            })
            .collect();
        let t = trend(&samples).expect("has RSS");
        assert_eq!(t.rss_first_mib, 51.0);
        assert_eq!(t.rss_last_mib, 80.0);
        assert_eq!(t.rss_first_tenth_mib, 51.5);
        assert_eq!(t.rss_last_tenth_mib, 80.0);
        assert!(t.rss_slope_second_half_mib_per_min.abs() < 1e-9);
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), 2.0);
    }

    #[test]
    fn csv_and_svg_carry_every_sample() {
        let samples = vec![sample(0.5, 60.0, 3.0), sample(1.0, 61.0, 4.0)];
        let csv = csv(&samples);
        assert_eq!(csv.lines().count(), 3);
        assert!(csv.starts_with(CSV_HEADER));
        assert!(csv.contains("30.0,10.0,100,10.0,1.000,3.000,6.000,0,60.0,5"));
        let svg = svg(&samples, "soak <test>");
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"series\"").count(), 2);
        assert!(svg.contains("soak &lt;test&gt;"));
    }
}
