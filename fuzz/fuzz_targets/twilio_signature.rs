//! `X-Twilio-Signature`: any auth token, URL, form body and received header must give a plain
//! yes/no, never a panic; the signature Sara computes for a request verifies (also with the
//! whitespace a proxy may add around the header), and the same signature with one byte
//! changed, or for a different URL or body, does not.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sara::channels::twilio::TwilioSignature;
use sara::http::webhook::form_params;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    token: &'a str,
    url: &'a str,
    body: &'a [u8],
    received: &'a str,
    flip_at: usize,
    flip_bits: u8,
}

fuzz_target!(|input: Input| {
    let signer = TwilioSignature::new(input.token);
    let params = form_params(input.body);

    // Whatever arrives in the header: a yes/no, no panic.
    let _ = signer.verify(input.url, &params, input.received);

    let signature = signer.sign(input.url, &params);
    assert!(
        signer.verify(input.url, &params, &signature),
        "own signature refused"
    );
    assert!(
        signer.verify(input.url, &params, &format!(" {signature}\t")),
        "own signature refused with surrounding whitespace"
    );
    // The order Twilio lists parameters in does not matter.
    let mut reversed = params.clone();
    reversed.reverse();
    assert!(
        signer.verify(input.url, &reversed, &signature),
        "order matters"
    );

    // One byte of the header changed (to any other byte, even non-ASCII): refused.
    let mut altered = signature.clone().into_bytes();
    let at = input.flip_at % altered.len();
    let flip = if input.flip_bits == 0 {
        1
    } else {
        input.flip_bits
    };
    altered[at] ^= flip;
    if let Ok(altered) = String::from_utf8(altered)
        && altered.trim() != signature
    {
        assert!(
            !signer.verify(input.url, &params, &altered),
            "altered signature accepted: {altered:?}"
        );
    }

    // The same signature for another URL or another body: refused (barring an HMAC-SHA1
    // collision, which the fuzzer will not find).
    let other_url = format!("{}x", input.url);
    assert!(
        !signer.verify(&other_url, &params, &signature),
        "URL not covered"
    );
    let mut other = params.clone();
    other.push(("x".into(), "1".into()));
    assert!(
        !signer.verify(input.url, &other, &signature),
        "body not covered"
    );
});
