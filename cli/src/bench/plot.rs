//! The bench's plots: PNG files drawn with `plotters`, text in DejaVu Sans (Debian's
//! `fonts-dejavu-core`, which `scripts/setup` installs).

use std::{path::Path, sync::OnceLock};

use plotters::prelude::*;

/// The font file the plots' text is drawn with.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Colours of the series, in order.
const COLOURS: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x55, 0x55, 0x55),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x00, 0x00, 0x00),
];

/// An axis value as a label: whole numbers without decimals.
fn label(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Registers the font once; the error says which package provides it.
fn font() -> anyhow::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(FONT).map_err(|e| {
            format!("cannot read the plot font {FONT} ({e}); install Debian's fonts-dejavu-core (scripts/setup does)")
        })?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{FONT} is not a font plotters can read"))
    })
    .clone()
    .map_err(|e| anyhow::anyhow!(e))
}

fn fail(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot failed: {e}")
}

/// Lines of (x, y) points against a logarithmic x axis, one per named series.
pub(crate) fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    font()?;
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_max) = (1.0f64, 1.0f64);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((1.0f64..x_max * 1.1).log_scale(), 0.0f64..y_max * 1.1)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| label(*x))
        .y_label_formatter(&|y| label(*y))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(fail)?;
    for (i, (name, data)) in series.iter().enumerate() {
        let colour = COLOURS[i.checked_rem(COLOURS.len()).unwrap_or(0)];
        chart
            .draw_series(LineSeries::new(
                data.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(fail)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x, y), (x.saturating_add(20), y)],
                    colour.stroke_width(2),
                )
            });
        chart
            .draw_series(data.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(fail)?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(fail)?;
    root.present().map_err(fail)?;
    Ok(())
}

/// Grouped bars: for each category (x axis), one bar per named series, heights in `y_label`.
pub(crate) fn bars(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> anyhow::Result<()> {
    font()?;
    let y_max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(1.0f64, f64::max);
    let groups = categories.len().max(1);
    let width = series.len().max(1);
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let slots = u32::try_from(groups.saturating_mul(width.saturating_add(1))).unwrap_or(u32::MAX);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0u32..slots, 0.0f64..y_max * 1.15)
        .map_err(fail)?;
    let step = width.saturating_add(1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(usize::try_from(slots).unwrap_or(usize::MAX))
        .x_label_formatter(&|slot| {
            let slot = usize::try_from(*slot).unwrap_or(0);
            if slot.checked_rem(step) == Some(width / 2) {
                categories
                    .get(slot.checked_div(step).unwrap_or(0))
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .y_label_formatter(&|y| label(*y))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(fail)?;
    for (s, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[s.checked_rem(COLOURS.len()).unwrap_or(0)];
        let bars = values.iter().enumerate().map(move |(g, &v)| {
            let left = u32::try_from(g.saturating_mul(step).saturating_add(s)).unwrap_or(0);
            Rectangle::new([(left, 0.0), (left.saturating_add(1), v)], colour.filled())
        });
        chart
            .draw_series(bars)
            .map_err(fail)?
            .label(name)
            .legend(move |(x, y)| {
                Rectangle::new(
                    [
                        (x, y.saturating_sub(5)),
                        (x.saturating_add(12), y.saturating_add(5)),
                    ],
                    colour.filled(),
                )
            });
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(fail)?;
    root.present().map_err(fail)?;
    Ok(())
}
