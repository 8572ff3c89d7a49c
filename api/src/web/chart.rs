//! A plain bar chart drawn on the server as inline SVG: no script, no external library.

use std::fmt::Write as _;

const WIDTH: u64 = 600;
const HEIGHT: u64 = 160;
const TOP: u64 = 16;
const BOTTOM: u64 = 24;
const LEFT: u64 = 40;

/// `text` safe inside SVG markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An SVG bar chart of `points` (label, value), one bar each, left to right; `title` names it
/// for screen readers. The scale starts at 0 and ends at the largest value.
pub(crate) fn bars(title: &str, points: &[(String, u64)]) -> String {
    let max = points.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let count = u64::try_from(points.len()).unwrap_or(u64::MAX).max(1);
    let plot_width = WIDTH.saturating_sub(LEFT);
    let plot_height = HEIGHT.saturating_sub(TOP).saturating_sub(BOTTOM);
    let slot = plot_width.checked_div(count).unwrap_or(1).max(1);
    let bar = slot.saturating_sub(slot.checked_div(4).unwrap_or(0)).max(1);
    let base = HEIGHT.saturating_sub(BOTTOM);
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg"><title id="chart-title">{}</title>"#,
        escape(title)
    );
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="#555" stroke-width="1"/><text x="{}" y="{}" font-size="11" text-anchor="end" fill="#222">{max}</text><text x="{}" y="{base}" font-size="11" text-anchor="end" fill="#222">0</text>"##,
        LEFT.saturating_sub(4),
        TOP.saturating_add(4),
        LEFT.saturating_sub(4),
    );
    for (i, (label, value)) in points.iter().enumerate() {
        let i = u64::try_from(i).unwrap_or(0);
        let height = value
            .saturating_mul(plot_height)
            .checked_div(max)
            .unwrap_or(0);
        let x = LEFT.saturating_add(i.saturating_mul(slot));
        let y = base.saturating_sub(height);
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{y}" width="{bar}" height="{height}" fill="#1f5fa8"><title>{}: {value}</title></rect>"##,
            escape(label)
        );
    }
    if let (Some((first, _)), Some((last, _))) = (points.first(), points.last()) {
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="{}" font-size="11" fill="#222">{}</text><text x="{WIDTH}" y="{}" font-size="11" text-anchor="end" fill="#222">{}</text>"##,
            HEIGHT.saturating_sub(6),
            escape(first),
            HEIGHT.saturating_sub(6),
            escape(last)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value_and_escape_labels() {
        let svg = bars(
            "per <minute>",
            &[
                ("a".to_owned(), 0),
                ("b&".to_owned(), 5),
                ("c".to_owned(), 10),
            ],
        );
        assert!(svg.contains("<title id=\"chart-title\">per &lt;minute&gt;</title>"));
        // The plot is 120 high: 10 fills it, 5 half of it, 0 is empty.
        assert!(svg.contains(r#"height="120" fill"#), "{svg}");
        assert!(svg.contains(r#"height="60" fill"#), "{svg}");
        assert!(svg.contains(r#"height="0" fill"#), "{svg}");
        assert!(svg.contains("<title>b&amp;: 5</title>"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 3);
    }
}
