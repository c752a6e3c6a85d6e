//! Floating-point numbers printed the way Java prints them.
//!
//! Kafka's `JsonConverter` hands `float`/`double` values to Jackson, which writes them with
//! `Float.toString` / `Double.toString`. Those print the shortest digits that round-trip (JDK 19+;
//! older JDKs occasionally printed one more digit), in one of two layouts:
//!
//! * plain decimal for `1e-3 <= |v| < 1e7`, always with at least one digit after the point
//!   (`1.5`, `2.0`, `0.001`, `1234567.0`);
//! * otherwise "computerized scientific notation": one digit, the point, at least one more digit,
//!   `E` and the exponent without a `+` (`1.0E-5`, `1.2345678E7`, `1.0E10`).
//!
//! The digits come from `ryu` (shortest round-trip digits, the same digits Java prints); only the
//! layout is done here. Non-finite values are written as Java spells them (`NaN`, `Infinity`,
//! `-Infinity`) without quotes: the JSON writer decides how to quote them.

/// Appends `v` as Java's `Double.toString(v)` prints it.
pub(crate) fn write_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0.0" } else { "0.0" });
    } else if v.abs() < f64::MIN_POSITIVE {
        subnormal(
            out,
            v,
            |s| s.parse::<f64>().ok() == Some(v),
            ryu::Buffer::new().format_finite(v),
        );
    } else {
        let mut buf = ryu::Buffer::new();
        layout_java(out, buf.format_finite(v));
    }
}

/// Appends `v` as Java's `Float.toString(v)` prints it.
pub(crate) fn write_f32(out: &mut String, v: f32) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0.0" } else { "0.0" });
    } else if v.abs() < f32::MIN_POSITIVE {
        subnormal(
            out,
            v,
            |s| s.parse::<f32>().ok() == Some(v),
            ryu::Buffer::new().format_finite(v),
        );
    } else {
        let mut buf = ryu::Buffer::new();
        layout_java(out, buf.format_finite(v));
    }
}

/// Java prints at least two significant digits, and when the shortest round-trip decimal has a
/// single digit it picks, among the one- and two-digit decimals that round to `v`, the one closest
/// to `v` (`Double.toString` javadoc, JDK 19+). For normal numbers that is always the one-digit
/// decimal itself (the rounding interval is far narrower than a tenth of a digit); only
/// subnormals, whose interval can be wide, can differ (`4.9E-324`, not `5.0E-324`).
fn subnormal<T: std::fmt::LowerExp + Copy>(
    out: &mut String,
    v: T,
    round_trips: impl Fn(&str) -> bool,
    shortest: &str,
) {
    let significant = shortest
        .bytes()
        .take_while(|b| *b != b'e')
        .filter(|b| b.is_ascii_digit())
        .skip_while(|b| *b == b'0')
        .count();
    if significant == 1 {
        // The exactly rounded two-digit decimal is the closest one.
        let two = format!("{v:.1e}");
        if round_trips(&two) {
            layout_java(out, &two);
            return;
        }
    }
    layout_java(out, shortest);
}

/// Re-lays out ryu's output (`1.5`, `1e-5`, `1.2345678e7`, `12345678.0`, `-0.001`) in Java's form.
/// `shortest` is finite and non-zero.
fn layout_java(out: &mut String, shortest: &str) {
    let (negative, s) = match shortest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, shortest),
    };
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().unwrap_or(0)),
        None => (s, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));

    // Significant digits d1 d2 … dn; the value is 0.d1d2…dn × 10^point.
    let mut digits = [0u8; 48];
    let mut n = 0usize;
    let mut point = int_part.len() as i32 + exp;
    for &b in int_part.as_bytes().iter().chain(frac_part.as_bytes()) {
        if n == 0 && b == b'0' {
            point -= 1; // a leading zero
            continue;
        }
        if n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    while n > 1 && digits[n - 1] == b'0' {
        n -= 1;
    }
    if n == 0 {
        // Not reached for non-zero input; keep the output well-formed anyway.
        out.push_str(if negative { "-0.0" } else { "0.0" });
        return;
    }
    let digits = &digits[..n];
    let sci_exp = point - 1;

    if negative {
        out.push('-');
    }
    if (-3..7).contains(&sci_exp) {
        if point <= 0 {
            out.push_str("0.");
            for _ in 0..(-point) {
                out.push('0');
            }
            push_ascii(out, digits);
        } else if point as usize >= n {
            push_ascii(out, digits);
            for _ in 0..(point as usize - n) {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            let p = point as usize;
            push_ascii(out, &digits[..p]);
            out.push('.');
            push_ascii(out, &digits[p..]);
        }
    } else {
        push_ascii(out, &digits[..1]);
        out.push('.');
        if n > 1 {
            push_ascii(out, &digits[1..]);
        } else {
            out.push('0');
        }
        out.push('E');
        push_i32(out, sci_exp);
    }
}

fn push_ascii(out: &mut String, digits: &[u8]) {
    for &d in digits {
        out.push(char::from(d));
    }
}

fn push_i32(out: &mut String, v: i32) {
    if v < 0 {
        out.push('-');
    }
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    let mut m = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    push_ascii(out, &buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: f64) -> String {
        let mut s = String::new();
        write_f64(&mut s, v);
        s
    }

    fn f(v: f32) -> String {
        let mut s = String::new();
        write_f32(&mut s, v);
        s
    }

    // Expected strings are Java's documented `Double.toString`/`Float.toString` forms.
    #[test]
    #[allow(clippy::approx_constant)] // 3.14 is a printing case, not π
    fn doubles_like_java() {
        assert_eq!(d(1.5), "1.5");
        assert_eq!(d(2.0), "2.0");
        assert_eq!(d(3.14), "3.14");
        assert_eq!(d(3.3), "3.3");
        assert_eq!(d(1.0e-5), "1.0E-5");
        assert_eq!(d(1.2345678e7), "1.2345678E7");
        assert_eq!(d(-0.0), "-0.0");
        assert_eq!(d(0.0), "0.0");
        assert_eq!(d(1.0e10), "1.0E10");
        assert_eq!(d(0.001), "0.001");
        assert_eq!(d(0.00099), "9.9E-4");
        assert_eq!(d(1234567.0), "1234567.0");
        assert_eq!(d(9999999.0), "9999999.0");
        assert_eq!(d(1.0e7), "1.0E7");
        assert_eq!(d(100.0), "100.0");
        assert_eq!(d(-123.456), "-123.456");
        assert_eq!(d(0.1), "0.1");
        assert_eq!(d(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(d(1.0e23), "1.0E23");
        assert_eq!(d(-1.5e-7), "-1.5E-7");
        assert_eq!(d(f64::MAX), "1.7976931348623157E308");
        assert_eq!(d(f64::MIN_POSITIVE), "2.2250738585072014E-308");
        assert_eq!(d(5e-324), "4.9E-324");
        assert_eq!(d(123456789012.0), "1.23456789012E11");
        assert_eq!(d(f64::NAN), "NaN");
        assert_eq!(d(f64::INFINITY), "Infinity");
        assert_eq!(d(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn floats_like_java() {
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(3.3), "3.3");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(2.0), "2.0");
        assert_eq!(f(1.0e-5), "1.0E-5");
        assert_eq!(f(1.0e10), "1.0E10");
        assert_eq!(f(-0.0), "-0.0");
        assert_eq!(f(f32::MAX), "3.4028235E38");
        assert_eq!(f(1.4e-45), "1.4E-45");
        assert_eq!(f(f32::NAN), "NaN");
    }
}
