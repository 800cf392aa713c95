//! CronJob schedules and time zones, checked as Kubernetes checks them: the standard
//! five-field cron syntax with the `@hourly`-style descriptors and `@every <duration>`
//! (robfig/cron's `ParseStandard`, whose error sentences are kept), and IANA time
//! zone names.

/// The range and names of one cron field.
struct Field {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    min: 1,
    max: 31,
    names: &[],
};
/// Month names, from 1.
const MONTH: Field = Field {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
/// Day names, from 0 (Sunday).
const DAY_OF_WEEK: Field = Field {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

const DESCRIPTORS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// A non-negative decimal number (Go's `strconv.Atoi`, refusing negatives).
fn number(expr: &str) -> Result<u32, String> {
    match expr.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {expr}")),
        Ok(n) => u32::try_from(n).map_err(|_| {
            format!("failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": value out of range")
        }),
        Err(_) => Err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": invalid syntax"
        )),
    }
}

fn number_or_name(expr: &str, field: &Field) -> Result<u32, String> {
    let lower = expr.to_lowercase();
    match field.names.iter().position(|n| *n == lower) {
        Some(i) => Ok(field.min + i as u32),
        None => number(expr),
    }
}

/// One comma-separated part of a field: `*`, `?`, `n`, `a-b`, each with an optional
/// `/step`.
fn range(expr: &str, field: &Field) -> Result<(), String> {
    let mut range_and_step = expr.split('/');
    let range = range_and_step.next().unwrap_or_default();
    let step = range_and_step.next();
    if range_and_step.next().is_some() {
        return Err(format!("too many slashes: {expr}"));
    }
    let bounds: Vec<&str> = range.split('-').collect();
    let (start, mut end) = if matches!(bounds[0], "*" | "?") {
        (field.min, field.max)
    } else {
        let start = number_or_name(bounds[0], field)?;
        match bounds.as_slice() {
            [_] => (start, start),
            [_, high] => (start, number_or_name(high, field)?),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match step {
        None => 1,
        Some(s) => {
            // `n/step` means `n-max/step`.
            if bounds.len() == 1 {
                end = field.max;
            }
            number(s)?
        }
    };
    if start < field.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            field.min
        ));
    }
    if end > field.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            field.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

/// Checks a cron schedule, returning robfig/cron's sentence for what is wrong.
pub(super) fn schedule(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("empty spec string".to_string());
    }
    let mut spec = spec;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let (tz, rest) = spec.split_once(' ').unwrap_or((spec, ""));
        let name = tz.split_once('=').map(|(_, n)| n).unwrap_or_default();
        if let Err(e) = time_zone(name) {
            return Err(format!("provided bad location {name}: {e}"));
        }
        spec = rest.trim();
    }
    if spec.starts_with('@') {
        if DESCRIPTORS.contains(&spec) {
            return Ok(());
        }
        if let Some(d) = spec.strip_prefix("@every ") {
            return crate::duration::parse_duration(d).map(|_| ()).map_err(|_| {
                format!("failed to parse duration {d}: time: invalid duration \"{d}\"")
            });
        }
        return Err(format!("unrecognized descriptor: {spec}"));
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    for (expr, field) in fields
        .iter()
        .zip([MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK])
    {
        for part in expr.split(',').filter(|p| !p.is_empty()) {
            range(part, &field)?;
        }
    }
    Ok(())
}

/// Checks an IANA time zone name (`Europe/Berlin`), as Go's `time.LoadLocation`
/// would find it.
pub(super) fn time_zone(name: &str) -> Result<(), String> {
    let unknown = || format!("unknown time zone {name}");
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 14
            && p != "."
            && p != ".."
            && !p.starts_with('-')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    };
    if !name.split('/').all(part_ok) {
        return Err(unknown());
    }
    if name == "UTC" {
        return Ok(());
    }
    let db = jiff::tz::db();
    // Without a time zone database on this host, any well-formed name passes (the
    // nodes that run the Jobs have one).
    if db.is_definitively_empty() || db.get(name).is_ok() {
        Ok(())
    } else {
        Err(unknown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_the_standard_cron_syntax() {
        for ok in [
            "*/5 * * * *",
            "0 0 * * *",
            "0 9-17 * * MON-FRI",
            "30 2 1,15 * *",
            "0 0 ? jan sun",
            "5/10 * * * *",
            "@hourly",
            "@every 1h30m",
            "0 0 31 12 6",
        ] {
            assert_eq!(schedule(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "empty spec string"),
            ("* * *", "expected exactly 5 fields, found 3: [* * *]"),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1): 5-1",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            ("*/2/3 * * * *", "too many slashes: */2/3"),
            (
                "x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        ] {
            assert_eq!(schedule(bad), Err(why.to_string()), "{bad:?}");
        }
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert!(time_zone("UTC").is_ok());
        assert!(time_zone("Etc/UTC").is_ok());
        if !jiff::tz::db().is_definitively_empty() {
            assert_eq!(
                time_zone("Mars/Olympus"),
                Err("unknown time zone Mars/Olympus".into())
            );
        }
        assert_eq!(
            time_zone("../etc/passwd"),
            Err("unknown time zone ../etc/passwd".into())
        );
    }
}
