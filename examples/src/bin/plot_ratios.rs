//! Draws the summary of `bench/compare` as a PNG bar chart: for every backend and
//! workload, how many times faster tessera was than JuiceFS (JuiceFS's median time over
//! ours) and how many times less memory it used at its peak.
//!
//! ```text
//! cargo run -p tessera-examples --bin plot_ratios -- bench/results/summary.csv bench/results/ratios.png
//! ```
//!
//! The CSV has a header line naming at least the columns `backend`, `workload`,
//! `speedup` and `rss_ratio`. Text is drawn with the DejaVu Sans font of Debian's
//! `fonts-dejavu-core` (or the TTF file `TESSERA_PLOT_FONT` names); without a font the
//! bars are drawn unlabelled and a warning says so.

use std::error::Error;
use std::process::ExitCode;

use plotters::prelude::*;

/// One bar pair of the chart.
struct Ratio {
    label: String,
    speedup: f64,
    rss_ratio: f64,
}

const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [csv, png] = args.as_slice() else {
        eprintln!("usage: plot_ratios SUMMARY.csv OUT.png");
        return ExitCode::from(2);
    };
    match run(csv, png) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plot_ratios: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the summary CSV (plain comma-separated values, no quoting).
fn read_ratios(text: &str) -> Result<Vec<Ratio>, Box<dyn Error>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().ok_or("empty CSV")?.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| format!("the CSV has no column {name:?}"))
    };
    let (b, w, s, r) = (
        col("backend")?,
        col("workload")?,
        col("speedup")?,
        col("rss_ratio")?,
    );
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| {
            f.get(i)
                .copied()
                .ok_or_else(|| format!("line {}: too few columns", n + 2))
        };
        let num = |i: usize| -> Result<f64, Box<dyn Error>> {
            let v = get(i)?;
            // A missing figure (a workload one side could not run) draws as no bar.
            Ok(if v.is_empty() || v == "NA" {
                0.0
            } else {
                v.parse()
                    .map_err(|_| format!("line {}: {v:?} is not a number", n + 2))?
            })
        };
        out.push(Ratio {
            label: format!("{} · {}", get(b)?, get(w)?),
            speedup: num(s)?,
            rss_ratio: num(r)?,
        });
    }
    if out.is_empty() {
        return Err("the CSV has no rows".into());
    }
    Ok(out)
}

/// Registers the label font; false when there is none to be had.
fn load_font() -> bool {
    let path = std::env::var("TESSERA_PLOT_FONT").unwrap_or_else(|_| DEFAULT_FONT.to_string());
    match std::fs::read(&path) {
        Ok(bytes) => {
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            match plotters::style::register_font("sans-serif", FontStyle::Normal, bytes) {
                Ok(()) => true,
                Err(_) => {
                    eprintln!("plot_ratios: {path} is not a usable font; drawing without text");
                    false
                }
            }
        }
        Err(e) => {
            eprintln!("plot_ratios: no font at {path} ({e}); drawing without text");
            false
        }
    }
}

fn run(csv: &str, png: &str) -> Result<(), Box<dyn Error>> {
    let text = std::fs::read_to_string(csv).map_err(|e| format!("{csv}: {e}"))?;
    let ratios = read_ratios(&text)?;
    let text_ok = load_font();

    let n = ratios.len();
    let height = 140 + 56 * n as u32;
    let root = BitMapBackend::new(png, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = ratios
        .iter()
        .flat_map(|r| [r.speedup, r.rss_ratio])
        .fold(1.0f64, f64::max)
        .ceil()
        + 0.5;

    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text_ok {
        builder
            .caption(
                "tessera vs juicefs: speedup (juicefs time / tessera time) and memory (juicefs RSS / tessera RSS)",
                ("sans-serif", 17),
            )
            .x_label_area_size(36)
            .y_label_area_size(300);
    }
    let mut chart = builder.build_cartesian_2d(0.0..max, 0.0..n as f64)?;
    let mut mesh = chart.configure_mesh();
    // Row labels are drawn by hand beside each row: a numeric axis cannot place them.
    mesh.disable_y_mesh().y_labels(0);
    if text_ok {
        mesh.x_desc("ratio (higher is better for tessera; 1 = equal)")
            .label_style(("sans-serif", 14));
    } else {
        mesh.x_labels(0);
    }
    mesh.draw()?;

    if text_ok {
        let style =
            ("sans-serif", 14)
                .into_text_style(&root)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Right,
                    plotters::style::text_anchor::VPos::Center,
                ));
        for (i, r) in ratios.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0.0, (n - 1 - i) as f64 + 0.5));
            root.draw(&Text::new(r.label.clone(), (x - 8, y), style.clone()))?;
        }
    }
    let speed_color = RGBColor(52, 101, 164);
    let rss_color = RGBColor(245, 121, 0);
    for (i, r) in ratios.iter().enumerate() {
        let row = (n - 1 - i) as f64;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, row + 0.52), (r.speedup, row + 0.88)],
            speed_color.filled(),
        )))?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, row + 0.12), (r.rss_ratio, row + 0.48)],
            rss_color.filled(),
        )))?;
        if text_ok {
            for (v, y) in [(r.speedup, row + 0.70), (r.rss_ratio, row + 0.30)] {
                if v > 0.0 {
                    chart.draw_series(std::iter::once(Text::new(
                        format!("{v:.2}×"),
                        (v + max * 0.005, y),
                        ("sans-serif", 12).into_text_style(&root).pos(
                            plotters::style::text_anchor::Pos::new(
                                plotters::style::text_anchor::HPos::Left,
                                plotters::style::text_anchor::VPos::Center,
                            ),
                        ),
                    )))?;
                }
            }
        }
    }
    // The break-even line.
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, n as f64)],
        RED.stroke_width(2),
    )))?;
    if text_ok {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (0.0, 0.0)],
                speed_color.filled(),
            )))?
            .label("speedup (time)")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], speed_color.filled())
            });
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (0.0, 0.0)],
                rss_color.filled(),
            )))?
            .label("memory (peak RSS)")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], rss_color.filled())
            });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_parse() {
        let csv = "backend,workload,speedup,rss_ratio,x\nsqlite+file,mdtest,5.5,2,1\nredis+file,put,NA,,3\n";
        let r = read_ratios(csv).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].label, "sqlite+file · mdtest");
        assert_eq!((r[0].speedup, r[0].rss_ratio), (5.5, 2.0));
        assert_eq!((r[1].speedup, r[1].rss_ratio), (0.0, 0.0));
        assert!(read_ratios("backend,workload\n").is_err());
        assert!(read_ratios("backend,workload,speedup,rss_ratio\na,b,x,1\n").is_err());
    }
}
