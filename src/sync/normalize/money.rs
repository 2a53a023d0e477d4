//! Money: webCRM's `f64` major units against Chargebee's `i64` minor units.
//!
//! Amounts pass through [`Decimal`] so that no conversion depends on binary floating point, and
//! the number of minor units per major unit comes from the currency's ISO 4217 exponent rather
//! than an assumed 100.

use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount {0} is not a finite number")]
    NotFinite(f64),
    #[error("amount {0} is too large to convert to a decimal")]
    TooLarge(f64),
    #[error("amount {value} {currency} does not fit in Chargebee's 64-bit minor units")]
    Overflow { value: Decimal, currency: String },
}

/// Currencies without minor units (ISO 4217 exponent 0).
const EXPONENT_0: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];

/// Currencies with thousandths (ISO 4217 exponent 3).
const EXPONENT_3: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// Units of account with four decimals (ISO 4217 exponent 4).
const EXPONENT_4: &[&str] = &["CLF", "UYW"];

/// The ISO 4217 minor-unit exponent of `currency` (case-insensitive); 2 for any code not known
/// to differ, which is what the great majority of currencies use.
pub fn exponent(currency: &str) -> u32 {
    let currency = currency.trim();
    let is = |list: &[&str]| list.iter().any(|c| c.eq_ignore_ascii_case(currency));
    if is(EXPONENT_0) {
        0
    } else if is(EXPONENT_3) {
        3
    } else if is(EXPONENT_4) {
        4
    } else {
        2
    }
}

/// Chargebee minor units to major units; exact, since every `i64` fits a decimal mantissa.
pub fn minor_to_major(minor: i64, currency: &str) -> Decimal {
    Decimal::new(minor, exponent(currency))
}

/// Major units to Chargebee minor units, rounding half-even at the currency's exponent so that
/// repeated conversions do not drift in one direction.
pub fn major_to_minor(major: Decimal, currency: &str) -> Result<i64, MoneyError> {
    let exp = exponent(currency);
    let rounded = major.round_dp_with_strategy(exp, RoundingStrategy::MidpointNearestEven);
    // After rounding the scale is at most `exp`, so scaling the mantissa up is exact.
    let shift = exp.saturating_sub(rounded.scale());
    10i128
        .checked_pow(shift)
        .and_then(|factor| rounded.mantissa().checked_mul(factor))
        .and_then(|minor| i64::try_from(minor).ok())
        .ok_or_else(|| MoneyError::Overflow {
            value: major,
            currency: currency.trim().to_string(),
        })
}

/// A webCRM amount as a decimal. The shortest decimal that round-trips to the same `f64` (what
/// `Display` prints) is taken, so 199.95 stays 199.95 rather than becoming the binary value
/// 199.94999999999998863….
pub fn from_f64(value: f64) -> Result<Decimal, MoneyError> {
    if !value.is_finite() {
        return Err(MoneyError::NotFinite(value));
    }
    Decimal::from_str(&value.to_string()).map_err(|_| MoneyError::TooLarge(value))
}

/// A decimal as the nearest `f64`, for writing amounts back to webCRM.
pub fn to_f64(value: Decimal) -> f64 {
    // `Decimal`'s own conversion is not correctly rounded; the standard library's parser is,
    // which is what makes `from_f64(to_f64(d)) == d` hold for amounts of up to 15 digits.
    f64::from_str(value.array_string().as_ref()).unwrap_or_else(|_| {
        use rust_decimal::prelude::ToPrimitive;
        value.to_f64().unwrap_or(f64::NAN)
    })
}

/// The form the engine compares and stores: rounded half-even to the currency's exponent and
/// printed with exactly that many decimals, so that `10.5`, `10.50` and `10.500` agree.
pub fn canonical(value: Decimal, currency: &str) -> String {
    let exp = exponent(currency);
    let mut rounded = value.round_dp_with_strategy(exp, RoundingStrategy::MidpointNearestEven);
    if rounded.is_zero() {
        // Never "-0.00": a negative amount that rounds to nothing is no amount.
        rounded.set_sign_positive(true);
    }
    format!("{:.*}", exp as usize, rounded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn exponents() {
        assert_eq!(exponent("DKK"), 2);
        assert_eq!(exponent("eur"), 2);
        assert_eq!(exponent("JPY"), 0);
        assert_eq!(exponent("krw"), 0);
        assert_eq!(exponent("KWD"), 3);
        assert_eq!(exponent(" tnd "), 3);
        assert_eq!(exponent("CLF"), 4);
        assert_eq!(exponent("UYW"), 4);
        assert_eq!(exponent("whatever"), 2);
        for code in EXPONENT_0 {
            assert_eq!(exponent(code), 0, "{code}");
        }
        for code in EXPONENT_3 {
            assert_eq!(exponent(code), 3, "{code}");
        }
    }

    #[test]
    fn dkk_two_decimals() {
        assert_eq!(minor_to_major(19995, "DKK"), dec("199.95"));
        assert_eq!(major_to_minor(dec("199.95"), "DKK").unwrap(), 19995);
        assert_eq!(canonical(dec("199.95"), "DKK"), "199.95");
        assert_eq!(canonical(minor_to_major(19995, "DKK"), "DKK"), "199.95");
    }

    #[test]
    fn jpy_no_decimals() {
        assert_eq!(minor_to_major(500, "JPY"), dec("500"));
        assert_eq!(major_to_minor(dec("500"), "JPY").unwrap(), 500);
        assert_eq!(canonical(dec("500"), "JPY"), "500");
        assert_eq!(canonical(dec("500.5"), "JPY"), "500");
        assert_eq!(canonical(dec("501.5"), "JPY"), "502");
    }

    #[test]
    fn kwd_three_decimals() {
        assert_eq!(minor_to_major(1234, "KWD"), dec("1.234"));
        assert_eq!(major_to_minor(dec("1.234"), "KWD").unwrap(), 1234);
        assert_eq!(canonical(dec("1.234"), "KWD"), "1.234");
        assert_eq!(canonical(dec("1.2"), "KWD"), "1.200");
    }

    #[test]
    fn clf_four_decimals() {
        assert_eq!(minor_to_major(12345, "CLF"), dec("1.2345"));
        assert_eq!(major_to_minor(dec("1.2345"), "CLF").unwrap(), 12345);
    }

    #[test]
    fn rounds_half_to_even() {
        assert_eq!(major_to_minor(dec("0.125"), "EUR").unwrap(), 12);
        assert_eq!(major_to_minor(dec("0.135"), "EUR").unwrap(), 14);
        assert_eq!(major_to_minor(dec("0.1251"), "EUR").unwrap(), 13);
        assert_eq!(major_to_minor(dec("-0.125"), "EUR").unwrap(), -12);
        assert_eq!(major_to_minor(dec("-0.135"), "EUR").unwrap(), -14);
        assert_eq!(canonical(dec("0.125"), "EUR"), "0.12");
        assert_eq!(canonical(dec("0.135"), "EUR"), "0.14");
    }

    #[test]
    fn negative_amounts() {
        assert_eq!(minor_to_major(-19995, "DKK"), dec("-199.95"));
        assert_eq!(major_to_minor(dec("-199.95"), "DKK").unwrap(), -19995);
        assert_eq!(canonical(dec("-199.95"), "DKK"), "-199.95");
        assert_eq!(canonical(dec("-0.001"), "DKK"), "0.00");
        assert_eq!(from_f64(-199.95).unwrap(), dec("-199.95"));
    }

    #[test]
    fn canonical_pads_and_rounds() {
        assert_eq!(canonical(dec("10.5"), "EUR"), "10.50");
        assert_eq!(canonical(dec("10.500"), "EUR"), "10.50");
        assert_eq!(canonical(dec("10"), "EUR"), "10.00");
        assert_eq!(canonical(dec("0"), "EUR"), "0.00");
        assert_eq!(canonical(dec("1234567.891"), "eur"), "1234567.89");
    }

    #[test]
    fn minor_units_edges() {
        assert_eq!(
            major_to_minor(minor_to_major(i64::MAX, "EUR"), "EUR").unwrap(),
            i64::MAX
        );
        assert_eq!(
            major_to_minor(minor_to_major(i64::MIN, "JPY"), "JPY").unwrap(),
            i64::MIN
        );
        let err = major_to_minor(dec("92233720368547758.08"), "EUR").unwrap_err();
        assert!(matches!(err, MoneyError::Overflow { .. }));
        assert!(
            err.to_string().contains("92233720368547758.08 EUR"),
            "{err}"
        );
        assert!(major_to_minor(Decimal::MAX, "KWD").is_err());
        assert!(major_to_minor(Decimal::MIN, "JPY").is_err());
    }

    #[test]
    fn from_f64_takes_the_shortest_decimal() {
        assert_eq!(from_f64(199.95).unwrap().to_string(), "199.95");
        assert_eq!(
            from_f64(0.1 + 0.2).unwrap().to_string(),
            "0.30000000000000004"
        );
        assert_eq!(from_f64(500.0).unwrap(), dec("500"));
        assert_eq!(from_f64(1e20).unwrap(), dec("100000000000000000000"));
        assert_eq!(from_f64(-0.0).unwrap(), Decimal::ZERO);
        assert_eq!(
            major_to_minor(from_f64(199.95).unwrap(), "DKK").unwrap(),
            19995
        );
        assert_eq!(
            major_to_minor(from_f64(1.005).unwrap(), "EUR").unwrap(),
            100
        );
    }

    #[test]
    fn from_f64_rejects_what_is_no_amount() {
        assert!(matches!(from_f64(f64::NAN), Err(MoneyError::NotFinite(_))));
        assert!(matches!(
            from_f64(f64::INFINITY),
            Err(MoneyError::NotFinite(_))
        ));
        let err = from_f64(f64::NEG_INFINITY).unwrap_err();
        assert_eq!(err.to_string(), "amount -inf is not a finite number");
        let err = from_f64(1e30).unwrap_err();
        assert!(matches!(err, MoneyError::TooLarge(_)));
        assert!(
            err.to_string().starts_with("amount 1000000000000000"),
            "{err}"
        );
    }

    #[test]
    fn to_f64_is_nearest() {
        assert_eq!(to_f64(dec("199.95")), 199.95);
        assert_eq!(to_f64(dec("-0.1")), -0.1);
        assert_eq!(to_f64(dec("123456789012.34")), 123456789012.34);
        assert_eq!(to_f64(Decimal::ZERO), 0.0);
    }

    proptest! {
        #[test]
        fn minor_major_minor_is_identity(
            minor in any::<i64>(),
            currency in prop::sample::select(vec!["JPY", "DKK", "usd", "KWD", "CLF", "XYZ"]),
        ) {
            let major = minor_to_major(minor, currency);
            prop_assert_eq!(major_to_minor(major, currency).unwrap(), minor);
            prop_assert_eq!(
                canonical(major, currency).parse::<Decimal>().unwrap(),
                major
            );
        }

        #[test]
        fn f64_round_trip_for_two_decimals(
            (mantissa, scale) in (0u32..=2).prop_flat_map(|scale| {
                let bound = 1_000_000_000_000i64 * 10i64.pow(scale);
                ((-bound + 1)..bound, Just(scale))
            }),
        ) {
            let d = Decimal::new(mantissa, scale);
            prop_assert_eq!(from_f64(to_f64(d)).unwrap(), d);
        }
    }
}
