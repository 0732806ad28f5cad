//! Column blobs as read back from LMDB: any bytes must decode to a column or a Corrupt error, never panic,
//! and a decoded column must re-encode to the same bytes; a row read must agree with the full decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchlight_store::{Column, decode_column, decode_column_row, encode_column};

fuzz_target!(|data: &[u8]| {
    // The first 4 bytes pick the row; the rest is the blob.
    if data.len() < 4 {
        return;
    }
    let row = u32::from_le_bytes(data[..4].try_into().unwrap());
    let blob = &data[4..];
    let full = decode_column("fuzz", blob);
    // Blobs are written with a checksum (format byte 1); those written without one (format 0) re-encode with it.
    if let Ok(col) = &full
        && blob[1] == 1
    {
        let again = encode_column(col);
        // NaN payloads survive bit for bit because values are copied as bytes.
        assert_eq!(again, blob, "decode/encode round trip changed the blob");
    }
    let one = decode_column_row("fuzz", blob, row);
    if let (Ok(col), Ok(Some(one))) = (&full, &one) {
        let w = col.width() as usize;
        let start = row as usize * w;
        match (col, one) {
            (Column::F32 { values, .. }, Column::F32 { values: r, .. }) => {
                let want: Vec<u32> = values[start..start + w].iter().map(|v| v.to_bits()).collect();
                let got: Vec<u32> = r.iter().map(|v| v.to_bits()).collect();
                assert_eq!(want, got);
            }
            (Column::U32 { values, .. }, Column::U32 { values: r, .. }) => {
                assert_eq!(&values[start..start + w], &r[..])
            }
            _ => panic!("row decoded as another type than the column"),
        }
    }
});
