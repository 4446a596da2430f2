//! The bitmap font for rendering: the public-domain 8x8 font (font8x8), scaled into the
//! printer's character cells.

use font8x8::UnicodeFonts;

/// The 8x8 glyph of `c` (bit 0 of each row byte is the leftmost dot); a hollow box for
/// characters the font does not have.
pub fn glyph(c: char) -> [u8; 8] {
    font8x8::BASIC_FONTS
        .get(c)
        .or_else(|| font8x8::LATIN_FONTS.get(c))
        .or_else(|| font8x8::BOX_FONTS.get(c))
        .or_else(|| font8x8::BLOCK_FONTS.get(c))
        .or_else(|| font8x8::GREEK_FONTS.get(c))
        .or_else(|| (c == '€').then_some(EURO))
        .unwrap_or(MISSING)
}

const EURO: [u8; 8] = [0x38, 0x44, 0x1F, 0x04, 0x1F, 0x44, 0x38, 0x00];
const MISSING: [u8; 8] = [0x7E, 0x42, 0x42, 0x42, 0x42, 0x42, 0x7E, 0x00];

/// Whether the glyph of `c` has dot (`x`, `y`) set, in an 8x8 grid.
pub fn dot(g: &[u8; 8], x: u32, y: u32) -> bool {
    g.get(y as usize)
        .is_some_and(|row| x < 8 && (row >> x) & 1 == 1)
}
