//! Raster formats in and out; every bad file fails cleanly.

use deepsim::io::{read_disparity, read_image, read_mask, write_tiff_f32, ReadOptions, SampleFormat};
use deepsim::ErrorKind;
use ndarray::Array2;
use std::path::Path;

fn write_npy_f32(path: &Path, values: &Array2<f32>) {
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", values.nrows(), values.ncols());
    let mut header = header.into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&header);
    for v in values.iter() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn float_tiff_round_trips_with_nan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.tif");
    let values = Array2::from_shape_fn((5, 7), |(y, x)| if x == 3 { f32::NAN } else { (y * 7 + x) as f32 * 0.25 });
    write_tiff_f32(&path, &values).unwrap();
    let back = read_disparity(&path).unwrap();
    assert_eq!(back.format, SampleFormat::F32);
    for ((a, b), ok) in values.iter().zip(&back.values).zip(&back.valid) {
        assert_eq!(a.is_nan(), !ok);
        if a.is_finite() {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn png_8_and_16_bit_grey_and_rgb_are_read_as_grey() {
    let dir = tempfile::tempdir().unwrap();
    let p8 = dir.path().join("g8.png");
    image::GrayImage::from_fn(4, 3, |x, y| image::Luma([(x * 10 + y) as u8])).save(&p8).unwrap();
    let r = read_image(&p8, &ReadOptions::default()).unwrap();
    assert_eq!((r.width(), r.height(), r.format), (4, 3, SampleFormat::U8));
    assert_eq!(r.values[(2, 3)], 32.0);
    assert!((r.to_unit()[(2, 3)] - 32.0 / 255.0).abs() < 1e-6);

    let p16 = dir.path().join("g16.png");
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(4, 3, |x, _| image::Luma([1000 * x as u16]))
        .save(&p16)
        .unwrap();
    let r = read_image(&p16, &ReadOptions::default()).unwrap();
    assert_eq!(r.format, SampleFormat::U16);
    assert_eq!(r.values[(1, 3)], 3000.0);
    let unit = r.to_unit();
    assert_eq!(unit[(0, 0)], 0.0, "the 2nd percentile maps to 0");
    assert_eq!(unit[(0, 3)], 1.0, "the 98th percentile maps to 1");

    let prgb = dir.path().join("rgb.png");
    image::RgbImage::from_fn(2, 2, |_, _| image::Rgb([100, 200, 50])).save(&prgb).unwrap();
    let r = read_image(&prgb, &ReadOptions::default()).unwrap();
    let expected = 0.299 * 100.0 + 0.587 * 200.0 + 0.114 * 50.0;
    assert!((r.values[(0, 0)] - expected).abs() < 1e-3);
}

#[test]
fn nodata_and_alpha_mark_invalid_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.png");
    image::GrayAlphaImage::from_fn(3, 1, |x, _| image::LumaA([7, if x == 1 { 0 } else { 255 }])).save(&p).unwrap();
    let r = read_image(&p, &ReadOptions::default()).unwrap();
    assert_eq!(r.valid.iter().copied().collect::<Vec<_>>(), vec![true, false, true]);
    let g = dir.path().join("g.png");
    image::GrayImage::from_fn(3, 1, |x, _| image::Luma([x as u8])).save(&g).unwrap();
    let r = read_image(&g, &ReadOptions { nodata: Some(0.0) }).unwrap();
    assert_eq!(r.valid.iter().copied().collect::<Vec<_>>(), vec![false, true, true]);
}

#[test]
fn npy_and_pfm_ground_truth_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let values = Array2::from_shape_fn((3, 4), |(y, x)| if y == 1 && x == 2 { f32::INFINITY } else { (y * 4 + x) as f32 });
    let npy = dir.path().join("gt.npy");
    write_npy_f32(&npy, &values);
    let r = read_disparity(&npy).unwrap();
    assert_eq!(r.values[(2, 3)], 11.0);
    assert!(!r.valid[(1, 2)]);

    // PFM: rows bottom-up, negative scale = little endian.
    let mut pfm = b"Pf\n4 3\n-1.0\n".to_vec();
    for y in (0..3).rev() {
        for x in 0..4 {
            pfm.extend_from_slice(&values[(y, x)].to_le_bytes());
        }
    }
    let path = dir.path().join("gt.pfm");
    std::fs::write(&path, pfm).unwrap();
    let r = read_disparity(&path).unwrap();
    assert_eq!(r.values[(0, 1)], 1.0);
    assert_eq!(r.values[(2, 3)], 11.0);
    assert!(!r.valid[(1, 2)]);

    let mask = dir.path().join("m.npy");
    write_npy_f32(&mask, &Array2::from_shape_fn((2, 2), |(y, _)| y as f32));
    assert_eq!(read_mask(&mask).unwrap().iter().copied().collect::<Vec<_>>(), vec![false, false, true, true]);
}

#[test]
fn bad_files_fail_cleanly_with_their_kind() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.png");
    std::fs::write(&garbage, b"this is not a png").unwrap();
    let truncated_tif = dir.path().join("t.tif");
    std::fs::write(&truncated_tif, b"II*\x00\x08\x00\x00\x00\x01").unwrap();
    let bad_npy = dir.path().join("b.npy");
    std::fs::write(&bad_npy, b"\x93NUMPY\x01\x00\x05\x00{'de").unwrap();
    let bad_pfm = dir.path().join("b.pfm");
    std::fs::write(&bad_pfm, b"Pf\n10 10\n-1.0\n\x00\x00").unwrap();
    let cases = [
        (read_image(&dir.path().join("missing.png"), &ReadOptions::default()).unwrap_err(), ErrorKind::Io),
        (read_image(&garbage, &ReadOptions::default()).unwrap_err(), ErrorKind::Decode),
        (read_image(&truncated_tif, &ReadOptions::default()).unwrap_err(), ErrorKind::Decode),
        (read_image(&dir.path().join("x.jpg"), &ReadOptions::default()).unwrap_err(), ErrorKind::Unsupported),
        (read_disparity(&bad_npy).unwrap_err(), ErrorKind::Decode),
        (read_disparity(&bad_pfm).unwrap_err(), ErrorKind::Decode),
    ];
    for (err, kind) in cases {
        assert_eq!(err.kind(), kind, "{err}");
        assert!(err.to_string().contains(dir.path().to_str().unwrap()), "the message names the file: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Row streaming: the reader, the [0, 1] range, the strip writer.
// ---------------------------------------------------------------------------------------------

mod streaming {
    use crate::common::Rng;
    use deepsim::ErrorKind;
    use deepsim::io::{
        ROWS_PER_STRIP, Raster, RasterRows, ReadOptions, RowReader, SampleFormat, TiffRowWriter, map_to_unit,
        open_mask_rows, open_rows, read_disparity, read_geotags, read_image, read_mask, unit_range,
    };
    use ndarray::{Array2, ArrayView2, s};
    use std::path::Path;
    use tiff::encoder::colortype::{self, ColorType};
    use tiff::encoder::compression::DeflateLevel;
    use tiff::encoder::{Compression, TiffEncoder, TiffValue};
    use tiff::tags::Tag;

    const GDAL_NODATA: u16 = 42113;

    /// Writes an image with the `tiff` crate, `rows_per_strip` rows per strip (deflate when
    /// `deflate`), with a GDAL_NODATA tag when `nodata` is given.
    fn write_tiff<C: ColorType>(
        path: &Path,
        (w, h): (u32, u32),
        data: &[C::Inner],
        rows_per_strip: u32,
        deflate: bool,
        nodata: Option<&str>,
    ) where
        [C::Inner]: TiffValue,
    {
        let compression = if deflate { Compression::Deflate(DeflateLevel::Fast) } else { Compression::Uncompressed };
        let mut enc = TiffEncoder::new(std::fs::File::create(path).unwrap()).unwrap().with_compression(compression);
        let mut image = enc.new_image::<C>(w, h).unwrap();
        image.rows_per_strip(rows_per_strip).unwrap();
        if let Some(nodata) = nodata {
            image.encoder().write_tag(Tag::Unknown(GDAL_NODATA), nodata).unwrap();
        }
        image.write_data(data).unwrap();
    }

    /// Equal bit for bit (NaN included).
    fn assert_same(a: ArrayView2<f32>, b: ArrayView2<f32>, what: &str) {
        assert_eq!(a.dim(), b.dim(), "{what}: shape");
        for ((y, x), v) in a.indexed_iter() {
            assert_eq!(v.to_bits(), b[(y, x)].to_bits(), "{what}: value at ({y}, {x}): {v} vs {}", b[(y, x)]);
        }
    }

    /// Reads rows `y0 .. y0 + rows` and checks them against the same rows of `whole`.
    fn assert_band(reader: &mut dyn RowReader, whole: &Raster, y0: usize, rows: usize, what: &str) {
        let (values, valid) = reader.read_rows(y0, rows).unwrap();
        let what = format!("{what}, rows {y0} + {rows}");
        assert_same(values.view(), whole.values.slice(s![y0..y0 + rows, ..]), &what);
        assert_eq!(valid, whole.valid.slice(s![y0..y0 + rows, ..]), "{what}: validity");
    }

    /// Reads every band of `band` rows, then a few bands out of order, checking them all.
    fn assert_reads_like(reader: &mut dyn RowReader, whole: &Raster, what: &str) {
        assert_eq!(
            (reader.width(), reader.height(), reader.format()),
            (whole.width(), whole.height(), whole.format),
            "{what}"
        );
        let h = whole.height();
        for band in [1, 2, 5, h] {
            for y0 in (0..h).step_by(band) {
                assert_band(reader, whole, y0, band.min(h - y0), &format!("{what}, bands of {band}"));
            }
        }
        for (y0, rows) in [(h / 2, h - h / 2), (0, 3), (h - 2, 2), (3, h / 2), (h / 2, 1), (0, h), (h, 0)] {
            assert_band(reader, whole, y0, rows, &format!("{what}, out of order"));
        }
    }

    /// The grey image a file of interleaved `samples` must give: ITU-R 601 luma of RGB, alpha 0
    /// and non-finite samples invalid.
    fn expected_grey(
        samples: &[f32],
        (w, h): (usize, usize),
        channels: usize,
        alpha: bool,
    ) -> (Array2<f32>, Array2<bool>) {
        let values = Array2::from_shape_fn((h, w), |(y, x)| {
            let px = &samples[(y * w + x) * channels..];
            if channels >= 3 { 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2] } else { px[0] }
        });
        let valid = Array2::from_shape_fn((h, w), |(y, x)| {
            let px = &samples[(y * w + x) * channels..(y * w + x + 1) * channels];
            values[(y, x)].is_finite() && !(alpha && px[channels - 1] == 0.0)
        });
        (values, valid)
    }

    /// Writes `data` as colour type `C` with several strip heights and checks read_image against
    /// the expected grey image and the streaming reader against read_image.
    fn check_pixel_type<C: ColorType>(
        dir: &Path,
        name: &str,
        data: &[C::Inner],
        to_f32: impl Fn(&C::Inner) -> f32,
        format: SampleFormat,
    ) where
        [C::Inner]: TiffValue,
    {
        let (w, h) = (23, 19);
        let channels = data.len() / (w * h);
        let alpha = channels == 2 || channels == 4;
        let samples: Vec<f32> = data.iter().map(to_f32).collect();
        let (values, valid) = expected_grey(&samples, (w, h), channels, alpha);
        for (i, rows_per_strip) in [1, 4, 7, 19, 64].into_iter().enumerate() {
            let path = dir.join(format!("{name}_{rows_per_strip}.tif"));
            write_tiff::<C>(&path, (w as u32, h as u32), data, rows_per_strip, i % 2 == 0, None);
            let what = format!("{name}, {rows_per_strip} rows per strip");
            let whole = read_image(&path, &ReadOptions::default()).unwrap();
            assert_eq!(whole.format, format, "{what}");
            assert_same(whole.values.view(), values.view(), &what);
            assert_eq!(whole.valid, valid, "{what}: validity");
            assert_reads_like(open_rows(&path, &ReadOptions::default()).unwrap().as_mut(), &whole, &what);
        }
    }

    #[test]
    fn streaming_reader_matches_read_image_for_every_strip_height_and_pixel_type() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut rng = Rng::new(7);
        let mut ints = |n: usize, lo: i64, hi: i64| -> Vec<i64> { (0..n).map(|_| rng.range(lo, hi)).collect() };
        let n = 23 * 19;
        check_pixel_type::<colortype::Gray8>(
            d,
            "u8",
            &ints(n, 0, 255).iter().map(|&v| v as u8).collect::<Vec<_>>(),
            |&v| v as f32,
            SampleFormat::U8,
        );
        check_pixel_type::<colortype::Gray16>(
            d,
            "u16",
            &ints(n, 0, 65535).iter().map(|&v| v as u16).collect::<Vec<_>>(),
            |&v| v as f32,
            SampleFormat::U16,
        );
        check_pixel_type::<colortype::GrayI16>(
            d,
            "i16",
            &ints(n, -32768, 32767).iter().map(|&v| v as i16).collect::<Vec<_>>(),
            |&v| v as f32,
            SampleFormat::I16,
        );
        check_pixel_type::<colortype::Gray32>(
            d,
            "u32",
            &ints(n, 0, u32::MAX as i64).iter().map(|&v| v as u32).collect::<Vec<_>>(),
            |&v| v as f32,
            SampleFormat::U32,
        );
        check_pixel_type::<colortype::GrayI32>(
            d,
            "i32",
            &ints(n, i32::MIN as i64, i32::MAX as i64).iter().map(|&v| v as i32).collect::<Vec<_>>(),
            |&v| v as f32,
            SampleFormat::I32,
        );
        let floats: Vec<f32> = ints(n, -1000, 1000)
            .iter()
            .map(|&v| match v {
                v if v % 17 == 0 => f32::NAN,
                v if v % 31 == 0 => f32::INFINITY,
                v => v as f32 * 0.37,
            })
            .collect();
        check_pixel_type::<colortype::Gray32Float>(d, "f32", &floats, |&v| v, SampleFormat::F32);
        let doubles: Vec<f64> = floats.iter().map(|&v| v as f64 * 1.000_000_1).collect();
        check_pixel_type::<colortype::Gray64Float>(d, "f64", &doubles, |&v| v as f32, SampleFormat::F64);
        check_pixel_type::<colortype::RGB8>(
            d,
            "rgb8",
            &ints(3 * n, 0, 255).iter().map(|&v| v as u8).collect::<Vec<_>>(),
            |&v| v as f32,
            SampleFormat::U8,
        );
        // Alpha: every sample in 0..3, so about a quarter of the pixels are transparent.
        check_pixel_type::<colortype::RGBA8>(
            d,
            "rgba8",
            &ints(4 * n, 0, 3).iter().map(|&v| v as u8 * 60).collect::<Vec<_>>(),
            |&v| v as f32,
            SampleFormat::U8,
        );
        check_pixel_type::<colortype::RGB16>(
            d,
            "rgb16",
            &ints(3 * n, 0, 65535).iter().map(|&v| v as u16).collect::<Vec<_>>(),
            |&v| v as f32,
            SampleFormat::U16,
        );
        check_pixel_type::<colortype::RGBA16>(
            d,
            "rgba16",
            &ints(4 * n, 0, 2).iter().map(|&v| v as u16 * 30000).collect::<Vec<_>>(),
            |&v| v as f32,
            SampleFormat::U16,
        );
        let rgb_floats: Vec<f32> =
            ints(3 * n, -500, 500).iter().map(|&v| if v == 0 { f32::NAN } else { v as f32 / 8.0 }).collect();
        check_pixel_type::<colortype::RGB32Float>(d, "rgbf32", &rgb_floats, |&v| v, SampleFormat::F32);
    }

    #[test]
    fn streaming_reader_honours_the_nodata_tag_and_the_nodata_option() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nd.tif");
        let (w, h) = (9u32, 11u32);
        let data: Vec<u16> = (0..w * h).map(|i| (i % 5) as u16 * 7).collect();
        write_tiff::<colortype::Gray16>(&path, (w, h), &data, 3, true, Some("14"));
        for (options, invalid) in [(ReadOptions::default(), 14.0), (ReadOptions { nodata: Some(7.0) }, 7.0)] {
            let whole = read_image(&path, &options).unwrap();
            for (v, ok) in whole.values.iter().zip(&whole.valid) {
                assert_eq!(*ok, *v != invalid, "{options:?}: {v}");
            }
            assert_reads_like(open_rows(&path, &options).unwrap().as_mut(), &whole, &format!("{options:?}"));
        }
    }

    /// A little-endian classic TIFF: `data` after the header, then one directory of `entries`
    /// (tag, type, values as bytes; 3 = SHORT, 4 = LONG), values longer than 4 bytes after it.
    fn tiff_bytes(data: &[u8], mut entries: Vec<(u16, u16, Vec<u8>)>) -> Vec<u8> {
        entries.sort_by_key(|e| e.0);
        let ifd = (8 + data.len()).next_multiple_of(2);
        let mut extra = ifd + 2 + 12 * entries.len() + 4;
        let mut out = b"II*\0".to_vec();
        out.extend_from_slice(&(ifd as u32).to_le_bytes());
        out.extend_from_slice(data);
        out.resize(ifd, 0);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        let mut tail = Vec::new();
        for (tag, ty, bytes) in &entries {
            let size = if *ty == 3 { 2 } else { 4 };
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&((bytes.len() / size) as u32).to_le_bytes());
            if bytes.len() <= 4 {
                let mut inline = bytes.clone();
                inline.resize(4, 0);
                out.extend_from_slice(&inline);
            } else {
                out.extend_from_slice(&(extra as u32).to_le_bytes());
                tail.extend_from_slice(bytes);
                extra += bytes.len();
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&tail);
        out
    }

    fn shorts(v: &[u16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn longs(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// An uncompressed single-band tiled TIFF (tiles padded at the right and bottom), samples of
    /// `bits` bits in `sample_format` (1 unsigned, 3 float) given as little-endian bytes.
    fn tiled_tiff(
        path: &Path,
        (w, h): (u32, u32),
        tile: u32,
        bits: u16,
        sample_format: u16,
        sample: impl Fn(u32, u32) -> Vec<u8>,
    ) {
        let bytes_per_sample = bits as usize / 8;
        let (across, down) = (w.div_ceil(tile), h.div_ceil(tile));
        let mut data = Vec::new();
        for ty in 0..down {
            for tx in 0..across {
                for y in ty * tile..(ty + 1) * tile {
                    for x in tx * tile..(tx + 1) * tile {
                        if x < w && y < h { data.extend(sample(x, y)) } else { data.extend(vec![0; bytes_per_sample]) }
                    }
                }
            }
        }
        let tile_bytes = (tile * tile) as usize * bytes_per_sample;
        let tiles = (across * down) as usize;
        let entries = vec![
            (256, 4, longs(&[w])),
            (257, 4, longs(&[h])),
            (258, 3, shorts(&[bits])),
            (259, 3, shorts(&[1])),
            (262, 3, shorts(&[1])),
            (277, 3, shorts(&[1])),
            (322, 4, longs(&[tile])),
            (323, 4, longs(&[tile])),
            (324, 4, longs(&(0..tiles).map(|i| (8 + i * tile_bytes) as u32).collect::<Vec<_>>())),
            (325, 4, longs(&vec![tile_bytes as u32; tiles])),
            (339, 3, shorts(&[sample_format])),
        ];
        std::fs::write(path, tiff_bytes(&data, entries)).unwrap();
    }

    #[test]
    fn streaming_reader_reads_tiled_tiffs() {
        let dir = tempfile::tempdir().unwrap();
        let (w, h) = (40u32, 37u32);
        let value = |x: u32, y: u32| (y * 1000 + x) as u16;
        let path = dir.path().join("tiled16.tif");
        tiled_tiff(&path, (w, h), 16, 16, 1, |x, y| value(x, y).to_le_bytes().to_vec());
        let whole = read_image(&path, &ReadOptions::default()).unwrap();
        assert_eq!(whole.format, SampleFormat::U16);
        assert_eq!(
            whole.values,
            Array2::from_shape_fn((h as usize, w as usize), |(y, x)| value(x as u32, y as u32) as f32)
        );
        assert!(whole.valid.iter().all(|&ok| ok));
        assert_reads_like(open_rows(&path, &ReadOptions::default()).unwrap().as_mut(), &whole, "u16 tiles");

        let float = |x: u32, y: u32| if (x + y).is_multiple_of(9) { f32::NAN } else { x as f32 - y as f32 * 0.5 };
        let path = dir.path().join("tiledf32.tif");
        tiled_tiff(&path, (w, h), 16, 32, 3, |x, y| float(x, y).to_le_bytes().to_vec());
        let whole = read_disparity(&path).unwrap();
        assert_eq!(whole.format, SampleFormat::F32);
        let expected = Array2::from_shape_fn((h as usize, w as usize), |(y, x)| float(x as u32, y as u32));
        assert_same(whole.values.view(), expected.view(), "f32 tiles");
        assert_eq!(whole.valid, expected.mapv(f32::is_finite));
        assert_reads_like(open_rows(&path, &ReadOptions::default()).unwrap().as_mut(), &whole, "f32 tiles");
    }

    #[test]
    fn band_interleaved_tiffs_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("planar.tif");
        let (w, h) = (4u32, 2u32);
        let plane = (w * h) as usize;
        let entries = vec![
            (256, 4, longs(&[w])),
            (257, 4, longs(&[h])),
            (258, 3, shorts(&[8, 8, 8])),
            (259, 3, shorts(&[1])),
            (262, 3, shorts(&[2])),
            (273, 4, longs(&[8, 8 + plane as u32, 8 + 2 * plane as u32])),
            (277, 3, shorts(&[3])),
            (278, 4, longs(&[h])),
            (279, 4, longs(&[plane as u32; 3])),
            (284, 3, shorts(&[2])),
        ];
        std::fs::write(&path, tiff_bytes(&vec![100; 3 * plane], entries)).unwrap();
        for err in [
            read_image(&path, &ReadOptions::default()).unwrap_err(),
            open_rows(&path, &ReadOptions::default()).err().unwrap(),
        ] {
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
            assert!(err.to_string().contains("planar.tif") && err.to_string().contains("INTERLEAVE=PIXEL"), "{err}");
        }
    }

    #[test]
    fn rows_beyond_the_height_are_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let tif = dir.path().join("small.tif");
        write_tiff::<colortype::Gray8>(&tif, (5, 6), &[1; 30], 4, false, None);
        let png = dir.path().join("small.png");
        image::GrayImage::from_fn(5, 6, |x, _| image::Luma([x as u8])).save(&png).unwrap();
        for path in [&tif, &png] {
            let mut reader = open_rows(path, &ReadOptions::default()).unwrap();
            assert_eq!(reader.read_rows(6, 0).unwrap().0.dim(), (0, 5), "no row at the end is fine");
            for (y0, rows) in [(4, 3), (6, 1), (7, 0), (usize::MAX, 2)] {
                let err = reader.read_rows(y0, rows).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
                assert!(
                    err.to_string().contains(path.to_str().unwrap()) && err.to_string().contains("6 rows"),
                    "{err}"
                );
            }
            assert_eq!(reader.read_rows(2, 4).unwrap().0.nrows(), 4, "the reader still works after an error");
        }
    }

    #[test]
    fn png_inputs_and_masks_stream_from_one_decode() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a.png");
        image::GrayAlphaImage::from_fn(7, 9, |x, y| image::LumaA([(x * y) as u8, if x == 2 { 0 } else { 255 }]))
            .save(&png)
            .unwrap();
        let options = ReadOptions { nodata: Some(6.0) };
        let whole = read_image(&png, &options).unwrap();
        assert_reads_like(open_rows(&png, &options).unwrap().as_mut(), &whole, "png");

        let tif = dir.path().join("m.tif");
        write_tiff::<colortype::Gray8>(
            &tif,
            (7, 9),
            &(0..63).map(|i| (i % 4) as u8).collect::<Vec<_>>(),
            2,
            true,
            Some("3"),
        );
        let npy = dir.path().join("m.npy");
        super::write_npy_f32(
            &npy,
            &Array2::from_shape_fn((9, 7), |(y, x)| if x == y { f32::NAN } else { ((x + y) % 3) as f32 }),
        );
        for path in [&png, &tif, &npy] {
            let mask = read_mask(path).unwrap();
            let as_raster = Raster {
                values: mask.mapv(|m| if m { 1.0 } else { 0.0 }),
                valid: mask.clone(),
                format: SampleFormat::U8,
            };
            let mut reader = open_mask_rows(path).unwrap();
            for y0 in (0..9).step_by(4) {
                assert_band(reader.as_mut(), &as_raster, y0, 4.min(9 - y0), &path.display().to_string());
            }
        }
    }

    /// NumPy's "linear" 2nd / 98th percentiles of the valid samples (sorted in total order), the
    /// reference both unit ranges must match bit for bit.
    fn numpy_unit_range(raster: &Raster) -> (f32, f32) {
        if raster.format == SampleFormat::U8 {
            return (0.0, 255.0);
        }
        let mut v: Vec<f32> = raster.values.iter().zip(&raster.valid).filter(|(_, ok)| **ok).map(|(v, _)| *v).collect();
        if v.is_empty() {
            return (0.0, 1.0);
        }
        v.sort_by(f32::total_cmp);
        let q = |q: f64| {
            let h = q * (v.len() - 1) as f64;
            let i = h.floor() as usize;
            let (below, above) = (v[i] as f64, v[(i + 1).min(v.len() - 1)] as f64);
            (below + (h - i as f64) * (above - below)) as f32
        };
        (q(0.02), q(0.98))
    }

    fn random_raster(
        seed: u64,
        format: SampleFormat,
        valid_every: u64,
        mut value: impl FnMut(&mut Rng) -> f32,
    ) -> Raster {
        let mut rng = Rng::new(seed);
        let (h, w) = (29, 37);
        let values = Array2::from_shape_fn((h, w), |_| value(&mut rng));
        let valid = Array2::from_shape_fn((h, w), |_| rng.next_u64().is_multiple_of(valid_every));
        let values = ndarray::Zip::from(&values).and(&valid).map_collect(|&v, &ok| if ok { v } else { f32::NAN });
        Raster { values, valid, format }
    }

    #[test]
    fn unit_range_is_bit_identical_to_to_unit() {
        use SampleFormat::*;
        let mut cases: Vec<(&str, Raster)> = vec![
            ("duplicated quarters", random_raster(1, F32, 1, |r| r.range(-4000, 4000) as f32 * 0.25)),
            ("one top bucket", random_raster(2, F32, 1, |r| f32::from_bits(1.0f32.to_bits() + r.range(0, 300) as u32))),
            (
                "wide exponents",
                random_raster(3, F32, 2, |r| {
                    let sign = if r.next_u64() % 2 == 0 { -1.0 } else { 1.0 };
                    sign * r.unit() * 10f32.powi(r.range(-30, 30) as i32)
                }),
            ),
            ("signed zeros", random_raster(4, F32, 1, |r| [-0.0, 0.0, -1.0, 1.0][r.range(0, 3) as usize])),
            ("u16 integers", random_raster(5, U16, 1, |r| r.range(0, 65535) as f32)),
            ("i16 integers", random_raster(6, I16, 1, |r| r.range(-32768, 32767) as f32)),
            ("u16 luma", random_raster(7, U16, 1, |r| r.unit() * 65535.0)),
            ("i16 with -0", random_raster(8, I16, 1, |r| [-0.0, 0.0, -3.0, 5.0][r.range(0, 3) as usize])),
            ("u32 large", random_raster(9, U32, 3, |r| r.range(0, u32::MAX as i64) as f32)),
            ("f64 small", random_raster(10, F64, 1, |r| r.unit() * 1e-6)),
            ("8-bit", random_raster(11, U8, 1, |r| r.range(0, 255) as f32)),
        ];
        for valid_every in [300, 500, 1000, 2000, 100_000] {
            cases.push((
                "few valid",
                random_raster(12 + valid_every, F32, valid_every, |r| r.range(-9, 9) as f32 * 1.5),
            ));
        }
        let mut one = random_raster(20, U16, 1, |r| r.range(0, 9) as f32);
        one.valid.fill(false);
        one.valid[(3, 4)] = true;
        cases.push(("one valid", one.clone()));
        one.valid.fill(false);
        cases.push(("none valid", one));
        for (name, raster) in &cases {
            let expected = raster.unit_range();
            let n = raster.valid.iter().filter(|&&ok| ok).count();
            let reference = numpy_unit_range(raster);
            assert_eq!(
                (expected.0.to_bits(), expected.1.to_bits()),
                (reference.0.to_bits(), reference.1.to_bits()),
                "{name} ({n} valid): {expected:?} vs NumPy {reference:?}"
            );
            for band in [1, 4, 29, 100] {
                let got = unit_range(&mut RasterRows::new(raster.clone()), band).unwrap();
                assert_eq!(
                    (got.0.to_bits(), got.1.to_bits()),
                    (expected.0.to_bits(), expected.1.to_bits()),
                    "{name}, bands of {band}: {got:?} vs {expected:?}"
                );
            }
            let unit = map_to_unit(raster.values.view(), raster.valid.view(), expected.0, expected.1);
            assert_same(unit.view(), raster.to_unit().view(), name);
        }
        assert_eq!(cases.last().unwrap().1.unit_range(), (0.0, 1.0), "no valid sample");
        let err = unit_range(&mut RasterRows::new(cases[0].1.clone()), 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    }

    #[test]
    fn unit_range_of_a_streamed_file_maps_bands_like_to_unit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.tif");
        let (w, h) = (31u32, 45u32);
        let mut rng = Rng::new(3);
        let data: Vec<f32> = (0..w * h)
            .map(|_| if rng.next_u64().is_multiple_of(7) { f32::NAN } else { rng.unit() * 100.0 - 20.0 })
            .collect();
        write_tiff::<colortype::Gray32Float>(&path, (w, h), &data, 8, true, None);
        let whole = read_image(&path, &ReadOptions::default()).unwrap();
        let mut reader = open_rows(&path, &ReadOptions::default()).unwrap();
        let (lo, hi) = unit_range(reader.as_mut(), 10).unwrap();
        assert_eq!((lo.to_bits(), hi.to_bits()), {
            let (a, b) = whole.unit_range();
            (a.to_bits(), b.to_bits())
        });
        let unit = whole.to_unit();
        for y0 in (0..h as usize).step_by(10) {
            let rows = 10.min(h as usize - y0);
            let (values, valid) = reader.read_rows(y0, rows).unwrap();
            assert_same(
                map_to_unit(values.view(), valid.view(), lo, hi).view(),
                unit.slice(s![y0..y0 + rows, ..]),
                "band",
            );
        }
    }

    /// Writes `image` through a row writer, `chunks` rows at a time (cycling).
    fn write_in_chunks<T: deepsim::io::TiffSample>(
        path: &Path,
        image: &Array2<T>,
        chunks: &[usize],
        geo: Option<&deepsim::io::GeoTags>,
    ) {
        let mut writer = TiffRowWriter::create(path, image.ncols(), image.nrows(), geo).unwrap();
        let (mut y, mut i) = (0, 0);
        while y < image.nrows() {
            let rows = chunks[i % chunks.len()].min(image.nrows() - y);
            writer.write_rows(image.slice(s![y..y + rows, ..])).unwrap();
            y += rows;
            i += 1;
        }
        writer.finish().unwrap();
    }

    #[test]
    fn row_writer_round_trips_float_and_8_bit_images() {
        let dir = tempfile::tempdir().unwrap();
        let w = 37;
        for h in [1, ROWS_PER_STRIP - 1, ROWS_PER_STRIP, ROWS_PER_STRIP + 1, 2 * ROWS_PER_STRIP + 2, 200] {
            let floats =
                Array2::from_shape_fn(
                    (h, w),
                    |(y, x)| if (x * 3 + y) % 11 == 0 { f32::NAN } else { x as f32 * 0.5 - y as f32 },
                );
            let path = dir.path().join(format!("f{h}.tif"));
            write_in_chunks(&path, &floats, &[1, 17, 5, 64, 100], None);
            let back = read_disparity(&path).unwrap();
            assert_eq!(back.format, SampleFormat::F32);
            assert_same(back.values.view(), floats.view(), &format!("f32, height {h}"));
            assert_eq!(back.valid, floats.mapv(f32::is_finite));

            let bytes = Array2::from_shape_fn((h, w), |(y, x)| (x * 7 + y * 3) as u8);
            let path = dir.path().join(format!("u{h}.tif"));
            write_in_chunks(&path, &bytes, &[h], None);
            let back = read_image(&path, &ReadOptions::default()).unwrap();
            assert_eq!(back.format, SampleFormat::U8);
            assert_eq!(back.values, bytes.mapv(f32::from), "u8, height {h}");
            let header = std::fs::read(&path).unwrap();
            assert_eq!(&header[..4], b"II*\0", "a classic little-endian TIFF");
        }
    }

    #[test]
    fn row_writer_fails_on_missing_or_extra_rows_and_leaves_no_complete_file() {
        let dir = tempfile::tempdir().unwrap();
        let image = Array2::<f32>::from_elem((100, 8), 1.5);
        let path = dir.path().join("short.tif");
        let mut writer = TiffRowWriter::create(&path, 8, 100, None).unwrap();
        writer.write_rows(image.slice(s![..70, ..])).unwrap();
        let err = writer.finish().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("short.tif") && err.to_string().contains("70 of 100"), "{err}");
        assert!(read_image(&path, &ReadOptions::default()).is_err(), "the file must not read as an image");

        let path = dir.path().join("dropped.tif");
        let mut writer = TiffRowWriter::create(&path, 8, 100, None).unwrap();
        writer.write_rows(image.view()).unwrap();
        drop(writer);
        assert!(read_image(&path, &ReadOptions::default()).is_err(), "dropped before finish: not an image");

        let path = dir.path().join("extra.tif");
        let mut writer = TiffRowWriter::<f32>::create(&path, 8, 100, None).unwrap();
        writer.write_rows(image.slice(s![..60, ..])).unwrap();
        for bad in [image.slice(s![..41, ..]), image.slice(s![..3, ..5])] {
            let err = writer.write_rows(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains("extra.tif"), "{err}");
        }
        writer.write_rows(image.slice(s![60.., ..])).unwrap();
        writer.finish().unwrap();
        assert_eq!(read_disparity(&path).unwrap().values, image);

        let err = TiffRowWriter::<u8>::create(&dir.path().join("empty.tif"), 0, 5, None).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let err = TiffRowWriter::<u8>::create(&dir.path().join("no/such/dir.tif"), 3, 5, None).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    }

    #[test]
    fn row_writer_keeps_the_georeferencing() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("geo.tif");
        let mut enc = TiffEncoder::new(std::fs::File::create(&source).unwrap()).unwrap();
        let mut image = enc.new_image::<colortype::Gray8>(4, 3).unwrap();
        image.encoder().write_tag(Tag::Unknown(33550), &[0.5f64, 0.5, 0.0][..]).unwrap();
        image.encoder().write_tag(Tag::Unknown(33922), &[0.0f64, 0.0, 0.0, 651000.0, 6862000.0, 0.0][..]).unwrap();
        image.encoder().write_tag(Tag::Unknown(34735), &[1u16, 1, 0, 1, 3072, 0, 1, 2154][..]).unwrap();
        image.encoder().write_tag(Tag::Unknown(34737), "RGF93 / Lambert-93|").unwrap();
        image.write_data(&[0u8; 12]).unwrap();
        let geo = read_geotags(&source).unwrap().expect("georeferenced");
        for (i, tags) in [geo.clone(), geo.scaled(2)].iter().enumerate() {
            let f = dir.path().join(format!("f{i}.tif"));
            write_in_chunks(&f, &Array2::<f32>::zeros((130, 6)), &[7], Some(tags));
            assert_eq!(read_geotags(&f).unwrap().as_ref(), Some(tags));
            let u = dir.path().join(format!("u{i}.tif"));
            write_in_chunks(&u, &Array2::<u8>::zeros((3, 6)), &[1], Some(tags));
            assert_eq!(read_geotags(&u).unwrap().as_ref(), Some(tags));
        }
    }
}
