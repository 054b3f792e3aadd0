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
