//! webCRM date-time parsing: every shape seen or plausible, MinValue as none, no panics.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use wcs::clients::webcrm::{format_query_datetime, parse_webcrm_datetime, Organisation};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid")
}

#[test]
fn parse_accepts_offsets_zulu_and_naive_values() {
    let expected = utc(2018, 6, 28, 6, 32, 8);
    for text in [
        "2018-06-28T08:32:08+02:00",
        "2018-06-28T06:32:08+00:00",
        "2018-06-28T06:32:08Z",
        "2018-06-28T06:32:08",
        "2018-06-28 06:32:08",
        "2018-06-28T06:32:08.0000000Z",
        "2018-06-28T06:32:08.0000000",
        "2018-06-28T08:32:08.000+0200",
        " 2018-06-28T06:32:08Z ",
        "/Date(1530167528000)/",
        "/Date(1530167528000+0200)/",
    ] {
        assert_eq!(parse_webcrm_datetime(text), Ok(Some(expected)), "{text}");
    }
}

#[test]
fn parse_keeps_fractional_seconds() {
    let parsed = parse_webcrm_datetime("2018-06-04T08:23:55.1234567Z")
        .expect("parses")
        .expect("some");
    assert_eq!(parsed.timestamp_subsec_nanos(), 123_456_700);
    assert_eq!(
        format_query_datetime(&parsed),
        "2018-06-04T08:23:55.1234567Z"
    );
}

#[test]
fn parse_reads_a_bare_date_as_utc_midnight() {
    assert_eq!(
        parse_webcrm_datetime("2024-02-29"),
        Ok(Some(utc(2024, 2, 29, 0, 0, 0)))
    );
}

#[test]
fn parse_treats_min_value_and_empty_as_none() {
    for text in [
        "0001-01-01T00:00:00+00:00",
        "0001-01-01T01:00:00+01:00",
        "0001-01-01T00:00:00",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00.0000000Z",
        "0001-01-02T00:30:00+01:00",
        "",
        "   ",
    ] {
        assert_eq!(parse_webcrm_datetime(text), Ok(None), "{text:?}");
    }
}

#[test]
fn parse_refuses_garbage_with_the_value_in_the_error() {
    for text in [
        "yesterday",
        "2018-13-01T00:00:00Z",
        "2018-06-28T25:00:00",
        "/Date(abc)/",
    ] {
        let err = parse_webcrm_datetime(text).expect_err(text);
        assert!(err.to_string().contains(text.trim()), "{err}");
    }
}

#[test]
fn dto_reads_null_min_value_and_offsets() {
    let org: Organisation = serde_json::from_str(
        r#"{"OrganisationId": 5, "OrganisationCreatedAt": "2018-05-02T10:39:47+00:00",
            "OrganisationUpdatedAt": null, "OrganisationVatVerifiedAt": "0001-01-01T00:00:00+00:00",
            "OrganisationPlus1": 12, "OrganisationCustom2": true, "SomethingNew": [1]}"#,
    )
    .expect("decodes");
    assert_eq!(org.created_at, Some(utc(2018, 5, 2, 10, 39, 47)));
    assert_eq!(org.updated_at, None);
    assert_eq!(org.vat_verified_at, None);
    assert_eq!(org.plus1.as_deref(), Some("12"));
    assert_eq!(org.custom2.as_deref(), Some("true"));
    assert!(org.extra.contains_key("SomethingNew"));
    let back = serde_json::to_value(&org).expect("encodes");
    assert_eq!(back["OrganisationCreatedAt"], "2018-05-02T10:39:47Z");
    assert_eq!(back["SomethingNew"], serde_json::json!([1]));
    assert!(back.get("OrganisationUpdatedAt").is_none());
}

#[test]
fn dto_with_a_bad_date_is_a_decode_error() {
    let result: Result<Organisation, _> =
        serde_json::from_str(r#"{"OrganisationCreatedAt": "not a date"}"#);
    assert!(result.is_err());
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_text(text in ".*") {
        let _ = parse_webcrm_datetime(&text);
    }

    #[test]
    fn parse_never_panics_on_date_like_text(text in "[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}[T ][0-9:.]{0,20}([Z+-][0-9:]{0,6})?") {
        let _ = parse_webcrm_datetime(&text);
    }

    #[test]
    fn parse_never_panics_on_ms_dates(ms in any::<i64>(), off in "[+-]?[0-9]{0,5}") {
        let _ = parse_webcrm_datetime(&format!("/Date({ms}{off})/"));
    }

    #[test]
    fn formatted_instants_parse_back(secs in 0i64..4_000_000_000, nanos in 0u32..10_000_000) {
        let dt = Utc.timestamp_opt(secs, nanos * 100).single().expect("valid");
        prop_assert_eq!(parse_webcrm_datetime(&format_query_datetime(&dt)), Ok(Some(dt)));
        let rfc = wcs::clients::webcrm::format_webcrm_datetime(&dt);
        prop_assert_eq!(parse_webcrm_datetime(&rfc), Ok(Some(dt)));
    }
}
