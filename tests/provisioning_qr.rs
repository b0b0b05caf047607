//! Proves that the provisioning QR codes are readable: every rendering (PNG, SVG,
//! terminal text) is decoded back by an independent QR reader (`rqrr`, and
//! `zbarimg` from zbar-tools when installed) and must yield the exact URI.

use secondfactor::provisioning::{MAX_QR_DATA_LEN, OtpAuthUri, QrCode};
use secondfactor::secret::Secret;
use secondfactor::totp::{Algorithm, TotpPolicy};

const QUIET_ZONE: usize = 4;

/// The typical enrollment of the design brief: 160-bit secret, default policy.
fn typical_uri() -> String {
    let secret = Secret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
    let uri = OtpAuthUri::new(
        "secondfactor demo",
        "alice@example.com",
        secret,
        TotpPolicy::default(),
    )
    .unwrap();
    uri.to_uri().to_string()
}

/// A long enrollment: long non-ASCII issuer and account, SHA-512, 512-bit secret.
fn long_uri() -> String {
    let bytes: Vec<u8> = (0u8..64)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let secret = Secret::from_base32(&data_encoding::BASE32_NOPAD.encode(&bytes)).unwrap();
    assert_eq!(secret.expose_bytes().len(), 64);
    let policy = TotpPolicy::new(Algorithm::Sha512, 8, 60, 1).unwrap();
    let uri = OtpAuthUri::new(
        "Bäckerei Müller & Söhne GmbH: Online-Banking für Geschäftskunden",
        "hans-jürgen.müller-lüdenscheidt+banking@example-mail-provider.de",
        secret,
        policy,
    )
    .unwrap();
    let text = uri.to_uri().to_string();
    assert!(text.len() > 400, "long URI is {} bytes", text.len());
    text
}

/// Every QR code rqrr finds in a prepared image, decoded. (A macro because rqrr's
/// image-buffer trait is not public.)
macro_rules! rqrr_decode {
    ($img:expr) => {{
        let mut img = $img;
        img.detect_grids()
            .iter()
            .map(|g| g.decode().expect("grid decodes").1)
            .collect::<Vec<String>>()
    }};
}

/// Decodes a PNG with `image`, checks its shape, and reads it with rqrr.
#[cfg(feature = "qr-png")]
fn decode_png(png: &[u8], qr: &QrCode) -> String {
    let img = image::load_from_memory_with_format(png, image::ImageFormat::Png).unwrap();
    assert_eq!(
        img.color(),
        image::ColorType::L8,
        "grayscale PNG (1-bit, widened to 8 by image)"
    );
    let side_px = (qr.width() + 2 * QUIET_ZONE) * 4;
    assert_eq!(
        (img.width() as usize, img.height() as usize),
        (side_px, side_px)
    );
    let luma = img.to_luma8();
    // Pixel values are pure black and white only.
    assert!(luma.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    // The quiet zone (16 px on each side) is white.
    for (x, y, p) in luma.enumerate_pixels() {
        let (x, y) = (x as usize, y as usize);
        let inside = |v: usize| (16..side_px - 16).contains(&v);
        if !(inside(x) && inside(y)) {
            assert_eq!(p.0[0], 255, "quiet zone pixel at ({x}, {y}) is dark");
        }
    }
    let found = rqrr_decode!(rqrr::PreparedImage::prepare(luma));
    assert_eq!(found.len(), 1, "exactly one QR code in the PNG");
    found.into_iter().next().unwrap()
}

/// Modules of the PNG, sampled at each module's center (quiet zone included).
#[cfg(feature = "qr-png")]
fn png_modules(png: &[u8], qr: &QrCode) -> Vec<Vec<bool>> {
    let luma = image::load_from_memory(png).unwrap().to_luma8();
    let side = qr.width() + 2 * QUIET_ZONE;
    (0..side)
        .map(|y| {
            (0..side)
                .map(|x| luma.get_pixel((x * 4 + 2) as u32, (y * 4 + 2) as u32).0[0] == 0)
                .collect()
        })
        .collect()
}

#[cfg(feature = "qr-png")]
#[test]
fn png_of_typical_uri_decodes_to_the_exact_uri_and_is_under_2_kib() {
    let uri = typical_uri();
    let qr = QrCode::new(&uri).unwrap();
    let png = qr.png().unwrap();
    eprintln!(
        "typical URI: {} bytes, QR {}x{} modules, PNG {} bytes",
        uri.len(),
        qr.width(),
        qr.width(),
        png.len()
    );
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    assert_eq!((png[24], png[25]), (1, 0), "1-bit grayscale");
    assert!(png.len() < 2048, "PNG is {} bytes", png.len());
    assert_eq!(decode_png(&png, &qr), uri);
}

#[cfg(feature = "qr-png")]
#[test]
fn png_of_long_uri_decodes_to_the_exact_uri() {
    let uri = long_uri();
    let qr = QrCode::new(&uri).unwrap();
    let png = qr.png().unwrap();
    eprintln!(
        "long URI: {} bytes, QR {}x{} modules, PNG {} bytes",
        uri.len(),
        qr.width(),
        qr.width(),
        png.len()
    );
    assert_eq!(decode_png(&png, &qr), uri);
}

#[cfg(feature = "qr-png")]
#[test]
fn parsing_the_decoded_png_gives_back_the_enrollment() {
    let uri = long_uri();
    let qr = QrCode::new(&uri).unwrap();
    let decoded = decode_png(&qr.png().unwrap(), &qr);
    let parsed = OtpAuthUri::parse(&decoded).unwrap();
    assert_eq!(
        parsed.issuer(),
        "Bäckerei Müller & Söhne GmbH: Online-Banking für Geschäftskunden"
    );
    assert_eq!(parsed.policy().algorithm().as_str(), "SHA512");
    assert_eq!(parsed.secret().expose_bytes().len(), 64);
}

/// `zbarimg` (zbar-tools) is the decoder the design brief names. Skipped with a note
/// when it is not installed, unless `CI=true`, where its absence fails the test.
#[cfg(feature = "qr-png")]
#[test]
fn zbarimg_reads_the_png() {
    let probe = std::process::Command::new("zbarimg")
        .arg("--version")
        .output();
    if probe.is_err() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("zbarimg is required in CI: apt-get install -y zbar-tools");
        }
        eprintln!("note: zbarimg not installed; skipping (apt-get install -y zbar-tools)");
        return;
    }
    for (name, uri) in [("typical", typical_uri()), ("long", long_uri())] {
        let qr = QrCode::new(&uri).unwrap();
        let path =
            std::env::temp_dir().join(format!("secondfactor-qr-{name}-{}.png", std::process::id()));
        std::fs::write(&path, qr.png().unwrap()).unwrap();
        let out = std::process::Command::new("zbarimg")
            .args(["--raw", "-q"])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(out.status.success(), "zbarimg failed on the {name} URI");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.trim_end_matches('\n'), uri, "{name} URI");
    }
}

#[cfg(feature = "qr-png")]
#[test]
fn png_data_uri_is_base64_of_the_png() {
    use base64::Engine;
    let qr = QrCode::new(&typical_uri()).unwrap();
    let data_uri = qr.png_data_uri().unwrap();
    let payload = data_uri
        .strip_prefix("data:image/png;base64,")
        .expect("data URI prefix");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .unwrap();
    assert_eq!(bytes, qr.png().unwrap());
}

/// Reads back the SVG this crate writes: asserts its structure (root element,
/// viewBox, white background, one path of 1-module-high rectangles
/// `M x y h n v1 h-n z`) and rasterizes the rectangles into a module grid.
fn svg_modules(svg: &str, side: usize) -> Vec<Vec<bool>> {
    let head = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{px}\" height=\"{px}\" \
         viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/><path fill=\"#000\" d=\"",
        px = side * 4
    );
    let body = svg
        .strip_prefix(&head)
        .expect("SVG header")
        .strip_suffix("\"/></svg>")
        .expect("SVG footer");
    assert_eq!(svg.matches('<').count(), 4, "svg, rect, path, /svg");
    let mut grid = vec![vec![false; side]; side];
    for rect in body.split_terminator('z') {
        let rest = rect.strip_prefix('M').expect("subpath starts with M");
        let (x, rest) = rest.split_once(' ').unwrap();
        let (y, rest) = rest.split_once('h').unwrap();
        let (n, back) = rest.split_once("v1h-").unwrap();
        assert_eq!(n, back, "rectangle closes where it started");
        let (x, y, n): (usize, usize, usize) =
            (x.parse().unwrap(), y.parse().unwrap(), n.parse().unwrap());
        assert!(n > 0 && x + n <= side && y < side);
        for cell in &mut grid[y][x..x + n] {
            assert!(!*cell, "rectangles do not overlap");
            *cell = true;
        }
    }
    grid
}

/// Reads back the terminal text: every line is `ESC[30;47m` + `side` half-block
/// cells + `ESC[0m`; each cell is two modules (top, bottom).
fn terminal_modules(text: &str, side: usize) -> Vec<Vec<bool>> {
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(
        lines.len(),
        side.div_ceil(2),
        "one line per two module rows"
    );
    assert!(text.ends_with('\n'));
    let mut grid = vec![vec![false; side]; side + 1];
    for (row, line) in lines.iter().enumerate() {
        let cells = line
            .strip_prefix("\x1b[30;47m")
            .expect("dark-on-light SGR")
            .strip_suffix("\x1b[0m")
            .expect("SGR reset");
        assert_eq!(cells.chars().count(), side, "line {row} width");
        for (x, c) in cells.chars().enumerate() {
            let (top, bottom) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected character {other:?}"),
            };
            grid[2 * row][x] = top;
            grid[2 * row + 1][x] = bottom;
        }
    }
    // The padding row below an odd-height code is light.
    assert!(grid[side].iter().all(|d| !d));
    grid.truncate(side);
    grid
}

fn decode_grid(grid: &[Vec<bool>], scale: usize) -> Vec<String> {
    let side = grid.len();
    rqrr_decode!(rqrr::PreparedImage::prepare_from_bitmap(
        side * scale,
        side * scale,
        |x, y| grid[y / scale][x / scale],
    ))
}

fn assert_quiet_zone(grid: &[Vec<bool>]) {
    let side = grid.len();
    for (y, row) in grid.iter().enumerate() {
        for (x, dark) in row.iter().enumerate() {
            let inside = |v: usize| (QUIET_ZONE..side - QUIET_ZONE).contains(&v);
            if !(inside(x) && inside(y)) {
                assert!(!dark, "quiet zone module ({x}, {y}) is dark");
            }
        }
    }
}

#[test]
fn svg_is_well_formed_and_decodes_to_the_exact_uri() {
    for uri in [typical_uri(), long_uri()] {
        let qr = QrCode::new(&uri).unwrap();
        let side = qr.width() + 2 * QUIET_ZONE;
        let grid = svg_modules(&qr.svg(), side);
        assert_quiet_zone(&grid);
        // Finder pattern corner: the top-left module of the symbol is dark.
        assert!(grid[QUIET_ZONE][QUIET_ZONE]);
        assert_eq!(decode_grid(&grid, 4), vec![uri]);
    }
}

#[test]
fn terminal_text_has_the_right_shape_and_decodes_to_the_exact_uri() {
    for uri in [typical_uri(), long_uri()] {
        let qr = QrCode::new(&uri).unwrap();
        let side = qr.width() + 2 * QUIET_ZONE;
        let grid = terminal_modules(&qr.terminal(), side);
        assert_quiet_zone(&grid);
        assert_eq!(decode_grid(&grid, 3), vec![uri]);
    }
}

/// The three renderings draw the same modules.
#[cfg(feature = "qr-png")]
#[test]
fn png_svg_and_terminal_agree_module_for_module() {
    let qr = QrCode::new(&typical_uri()).unwrap();
    let side = qr.width() + 2 * QUIET_ZONE;
    let from_png = png_modules(&qr.png().unwrap(), &qr);
    let from_svg = svg_modules(&qr.svg(), side);
    let from_terminal = terminal_modules(&qr.terminal(), side);
    assert_eq!(from_png, from_svg);
    assert_eq!(from_png, from_terminal);
    let dark = from_png.iter().flatten().filter(|d| **d).count();
    let runs: usize = qr.svg().matches("v1h-").count();
    assert!(dark > side && runs > 0 && runs <= dark);
}

#[test]
fn qr_version_grows_with_the_data() {
    let short = QrCode::new(&typical_uri()).unwrap();
    let long = QrCode::new(&long_uri()).unwrap();
    assert!(short.width() >= 21 && (short.width() - 21).is_multiple_of(4));
    assert!(long.width() > short.width());
}

#[test]
fn too_long_for_a_qr_code_is_an_input_error() {
    let err = QrCode::new(&"A".repeat(MAX_QR_DATA_LEN + 1)).unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    // Exactly the capacity of a version 40 code at level M still encodes.
    let full = QrCode::new(&"\u{e9}".repeat(MAX_QR_DATA_LEN / 2)).unwrap();
    assert_eq!(full.width(), 177);
    // The largest enrollment (256-byte non-ASCII issuer and account) does not fit: a
    // clear error, not a panic.
    let wide = "ü".repeat(128);
    let uri = OtpAuthUri::new(&wide, &wide, Secret::generate(), TotpPolicy::default()).unwrap();
    let err = QrCode::new(&uri.to_uri()).unwrap_err();
    assert_eq!(err.code(), "invalid_input");
}

#[test]
fn qr_debug_does_not_show_the_modules() {
    let uri = typical_uri();
    let qr = QrCode::new(&uri).unwrap();
    let debug = format!("{qr:?}");
    assert!(debug.contains("redacted"), "{debug}");
    assert!(!debug.contains("JBSWY3DP"), "{debug}");
    assert!(
        !debug.contains("true") && !debug.contains("false"),
        "{debug}"
    );
    assert!(debug.len() < 80, "{debug}");
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(24))]
    /// Any printable-ASCII text (URIs are ASCII once percent-encoded) comes back
    /// from the rendered code, whatever encoding mode and version the encoder picks.
    #[test]
    fn arbitrary_text_round_trips_through_the_svg(text in "[ -~]{1,300}") {
        let qr = QrCode::new(&text).unwrap();
        let grid = svg_modules(&qr.svg(), qr.width() + 2 * QUIET_ZONE);
        proptest::prop_assert_eq!(decode_grid(&grid, 3), vec![text]);
    }
}
