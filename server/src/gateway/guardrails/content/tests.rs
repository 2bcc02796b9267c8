use super::*;

fn filter(names: &[&str], action: Action) -> ContentFilter {
    let patterns = names
        .iter()
        .flat_map(|n| prebuilt(n, action).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    ContentFilter::new(patterns, Vec::new(), None).unwrap_or_else(|e| panic!("{e}"))
}

fn masked(f: &ContentFilter, text: &str) -> String {
    let mut m = Masks::default();
    f.apply(text, &mut m)
        .unwrap_or_else(|b| panic!("blocked by {}", b.what))
        .unwrap_or_else(|| text.to_string())
}

#[test]
fn personal_data_is_masked_with_numbered_placeholders() {
    let f = filter(&["pii"], Action::Mask);
    let text = "Mail ann@example.com or bob@corp.io, call +1 415-555-0132, card 4111 1111 1111 1111, \
                IBAN GB82 WEST 1234 5698 7654 32, SSN 123-45-6789, from 10.0.3.7 and 2001:db8::ff00:42:8329. \
                Write to ann@example.com again.";
    let out = masked(&f, text);
    assert_eq!(
        out,
        "Mail [EMAIL_1] or [EMAIL_2], call [PHONE_1], card [CREDIT_CARD_1], \
         IBAN [IBAN_1], SSN [US_SSN_1], from [IP_ADDRESS_1] and [IP_ADDRESS_2]. \
         Write to [EMAIL_1] again."
    );
}

#[test]
fn checksums_keep_lookalikes() {
    let f = filter(
        &["credit_card", "iban", "us_ssn", "ip_address"],
        Action::Mask,
    );
    for text in [
        "order 4111 1111 1111 1112 shipped",    // fails Luhn
        "ref GB82 WEST 1234 5698 7654 33",      // fails mod 97
        "SSN-like 000-12-3456 and 666-12-3456", // never issued
        "version 999.1.2.3 at 12:30:45",        // not addresses
    ] {
        assert_eq!(masked(&f, text), text);
    }
}

#[test]
fn secrets_are_found() {
    let f = filter(&["secrets"], Action::Mask);
    let text = "key AKIAIOSFODNN7EXAMPLE secret aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY \
                token ghp_0123456789abcdefghijABCDEFGHIJ012345 and sk-proj-abcdefghijklmnopqrstuvwx";
    let out = masked(&f, text);
    assert!(!out.contains("AKIAIOSFODNN7EXAMPLE"), "{out}");
    assert!(!out.contains("wJalrXUtnFEMI"), "{out}");
    assert!(!out.contains("ghp_0123"), "{out}");
    assert!(!out.contains("sk-proj-abc"), "{out}");
    assert!(out.contains("[AWS_ACCESS_KEY_1]"), "{out}");
}

#[test]
fn a_blocking_match_refuses_and_names_the_pattern() {
    let f = filter(&["us_ssn"], Action::Block);
    let mut m = Masks::default();
    assert_eq!(
        f.apply("my SSN is 123-45-6789", &mut m),
        Err(Blocked {
            what: "us_ssn".into()
        })
    );
    assert_eq!(f.apply("nothing here", &mut m), Ok(None));
}

#[test]
fn banned_words_match_whole_words_in_any_case() {
    let f = ContentFilter::new(
        Vec::new(),
        vec![
            Word {
                keyword: "confidential".into(),
                action: Action::Block,
                description: None,
            },
            Word {
                keyword: "project x".into(),
                action: Action::Mask,
                description: None,
            },
        ],
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut m = Masks::default();
    assert!(f.apply("This is CONFIDENTIAL.", &mut m).is_err());
    assert_eq!(f.apply("nonconfidentiality", &mut m), Ok(None));
    assert_eq!(
        f.apply("About Project X today", &mut m),
        Ok(Some("About [REDACTED_1] today".into()))
    );
}

#[test]
fn placeholders_are_put_back() {
    let f = filter(&["email"], Action::Mask);
    let mut m = Masks::default();
    let out = f
        .apply("write to ann@example.com", &mut m)
        .ok()
        .flatten()
        .unwrap_or_default();
    assert_eq!(out, "write to [EMAIL_1]");
    assert_eq!(
        m.unmask("Sure, I wrote to [EMAIL_1] [and] [EMAIL_2]."),
        "Sure, I wrote to ann@example.com [and] [EMAIL_2]."
    );
}

#[test]
fn custom_patterns_and_unknown_names() {
    let p = custom("ticket id", r"\bTCK-\d{6}\b", Action::Mask).unwrap_or_else(|e| panic!("{e}"));
    let f = ContentFilter::new(vec![p], Vec::new(), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(masked(&f, "see TCK-123456"), "see [TICKET_ID_1]");
    assert!(prebuilt("passport", Action::Mask).is_err());
    assert!(custom("bad", "(", Action::Mask).is_err());
}
