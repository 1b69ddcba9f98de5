//! Conditions that keep their `lastTransitionTime` while their status stays the
//! same, so an unchanged world yields an unchanged status (and no write).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// The condition of `type_` in `conditions`, if any.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// A condition of `type_`; its `lastTransitionTime` is the previous one's when the
/// status did not change, `now` otherwise. An empty reason becomes the status
/// (the API requires one); the message is cut to the API's 32768 characters.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: String,
    message: String,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Condition {
    let last_transition_time = match find(previous, type_) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => crate::runtime::status::time(now),
    };
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: if reason.is_empty() {
            status.to_string()
        } else {
            reason
        },
        message: message.chars().take(32768).collect(),
        last_transition_time,
        observed_generation: generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let first = condition(
            &[],
            "Ready",
            "True",
            "Synced".into(),
            "m".into(),
            Some(1),
            at(10),
        );
        assert_eq!(first.last_transition_time, Time(at(10)));
        let same = condition(
            std::slice::from_ref(&first),
            "Ready",
            "True",
            "Other".into(),
            "n".into(),
            Some(2),
            at(20),
        );
        assert_eq!(same.last_transition_time, Time(at(10)));
        let flipped = condition(
            &[same],
            "Ready",
            "False",
            "Down".into(),
            "x".into(),
            Some(2),
            at(30),
        );
        assert_eq!(flipped.last_transition_time, Time(at(30)));
    }

    #[test]
    fn empty_reason_becomes_the_status_and_long_messages_are_cut() {
        let c = condition(
            &[],
            "Ready",
            "Unknown",
            String::new(),
            "x".repeat(40_000),
            None,
            at(1),
        );
        assert_eq!(c.reason, "Unknown");
        assert_eq!(c.message.len(), 32768);
    }
}
