//! `X-Hub-Signature-256`: any app secret, body and header must give a plain yes/no, never a
//! panic (the header is hex that Sara decodes itself); the header Sara computes for a body
//! verifies, upper-case hex too, and one changed byte of it, or of the body, is refused.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sara::channels::whatsapp::WhatsAppSignature;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    secret: &'a str,
    body: &'a [u8],
    header: &'a str,
    flip_at: usize,
    flip_bits: u8,
}

fuzz_target!(|input: Input| {
    let signer = WhatsAppSignature::new(input.secret);

    // Whatever arrives in the header: a yes/no, no panic.
    let _ = signer.verify(input.body, input.header);
    // Also with a well-formed prefix, so the fuzzer reaches the hex decoder quickly.
    let _ = signer.verify(input.body, &format!("sha256={}", input.header));

    let header = signer.sign(input.body);
    assert!(header.starts_with("sha256=") && header.len() == 7 + 64);
    assert!(signer.verify(input.body, &header), "own signature refused");
    assert!(
        signer.verify(input.body, &format!(" {header}\r\n")),
        "whitespace refused"
    );
    let upper = format!("sha256={}", header["sha256=".len()..].to_uppercase());
    assert!(signer.verify(input.body, &upper), "upper-case hex refused");

    // One byte of the header changed: refused unless it only changed the case of a hex digit.
    let mut altered = header.clone().into_bytes();
    let at = input.flip_at % altered.len();
    let flip = if input.flip_bits == 0 {
        1
    } else {
        input.flip_bits
    };
    altered[at] ^= flip;
    if let Ok(altered) = String::from_utf8(altered) {
        let same_hex =
            altered.get(..7) == Some("sha256=") && altered[7..].eq_ignore_ascii_case(&header[7..]);
        if !same_hex && altered.trim() != header {
            assert!(
                !signer.verify(input.body, &altered),
                "altered signature accepted: {altered:?}"
            );
        }
    }

    // The same header for a body with one more byte: refused.
    let mut longer = input.body.to_vec();
    longer.push(b' ');
    assert!(!signer.verify(&longer, &header), "body not covered");
});
