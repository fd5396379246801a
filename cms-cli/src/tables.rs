//! Terminal tables for human-readable output.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};

/// A table with a header; columns listed in `right` are right-aligned (numbers).
pub fn table(header: &[&str], right: &[usize], rows: Vec<Vec<String>>) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header.iter().map(|name| Cell::new(*name)));
    for row in rows {
        table.add_row(row.into_iter().enumerate().map(|(index, text)| {
            let cell = Cell::new(text);
            if right.contains(&index) { cell.set_alignment(CellAlignment::Right) } else { cell }
        }));
    }
    table
}
