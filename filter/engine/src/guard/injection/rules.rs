//! The rule catalogue: stable ids (audit, metrics, `disabled_rules`) and
//! default weights. A text's score combines the weights of the distinct rules
//! it fired as a noisy-OR, `1 − Π(1 − w)`: one strong rule can trip a guard
//! on its own, weak ones only together, and repeating a phrase adds nothing.

/// One rule. The discriminant indexes [`RULES`] and the fired-rule bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    Override,
    QuotedOverride,
    ContextReset,
    NewInstructions,
    ChatTemplateToken,
    RoleLabel,
    PromptExtraction,
    SystemPromptProbe,
    Verbatim,
    Persona,
    IdentitySwap,
    RefusalSuppression,
    NoRestrictions,
    StayInCharacter,
    PolicyEvasion,
    RolePlay,
    DualResponse,
    DecodeAndFollow,
    EncodedPayload,
    HiddenText,
    ZeroWidthSplit,
    BidiOverride,
    HomoglyphMix,
    SpacedLetters,
    AddressedToAssistant,
    HiddenFromUser,
    Exfiltration,
    AddressedUnlock,
    StandingOrder,
    DividerScript,
    FictionalDetail,
}

/// A rule's catalogue entry.
pub(super) struct RuleInfo {
    pub rule: Rule,
    pub id: &'static str,
    pub weight: f32,
    /// Fires only for [`super::Source::Indirect`] text: phrasing that is
    /// ordinary from a user ("you must", "send the report to") but has no
    /// business inside a tool result or a retrieved page.
    pub indirect_only: bool,
}

const fn entry(rule: Rule, id: &'static str, weight: f32, indirect_only: bool) -> RuleInfo {
    RuleInfo { rule, id, weight, indirect_only }
}

/// Every rule, in discriminant order.
pub(super) const RULES: [RuleInfo; 31] = [
    entry(Rule::Override, "override", 0.75, false),
    entry(Rule::QuotedOverride, "quoted_override", 0.3, false),
    entry(Rule::ContextReset, "context_reset", 0.35, false),
    entry(Rule::NewInstructions, "new_instructions", 0.3, false),
    entry(Rule::ChatTemplateToken, "chat_template_token", 0.55, false),
    entry(Rule::RoleLabel, "role_label", 0.4, false),
    entry(Rule::PromptExtraction, "prompt_extraction", 0.75, false),
    entry(Rule::SystemPromptProbe, "system_prompt_probe", 0.45, false),
    entry(Rule::Verbatim, "verbatim", 0.25, false),
    entry(Rule::Persona, "persona", 0.8, false),
    entry(Rule::IdentitySwap, "identity_swap", 0.35, false),
    entry(Rule::RefusalSuppression, "refusal_suppression", 0.5, false),
    entry(Rule::NoRestrictions, "no_restrictions", 0.45, false),
    entry(Rule::StayInCharacter, "stay_in_character", 0.35, false),
    entry(Rule::PolicyEvasion, "policy_evasion", 0.6, false),
    entry(Rule::RolePlay, "role_play", 0.2, false),
    entry(Rule::DualResponse, "dual_response", 0.35, false),
    entry(Rule::DecodeAndFollow, "decode_and_follow", 0.45, false),
    entry(Rule::EncodedPayload, "encoded_payload", 0.3, false),
    entry(Rule::HiddenText, "hidden_text", 0.5, false),
    entry(Rule::ZeroWidthSplit, "zero_width_split", 0.3, false),
    entry(Rule::BidiOverride, "bidi_override", 0.3, false),
    entry(Rule::HomoglyphMix, "homoglyph_mix", 0.35, false),
    entry(Rule::SpacedLetters, "spaced_letters", 0.15, false),
    entry(Rule::AddressedToAssistant, "addressed_to_assistant", 0.55, true),
    entry(Rule::HiddenFromUser, "hidden_from_user", 0.4, false),
    entry(Rule::Exfiltration, "exfiltration", 0.35, true),
    entry(Rule::AddressedUnlock, "addressed_unlock", 0.3, false),
    entry(Rule::StandingOrder, "standing_order", 0.2, false),
    entry(Rule::DividerScript, "divider_script", 0.45, false),
    entry(Rule::FictionalDetail, "fictional_detail", 0.4, false),
];

impl Rule {
    pub(super) fn index(self) -> usize {
        self as usize
    }

    pub(super) fn info(self) -> Option<&'static RuleInfo> {
        RULES.get(self.index())
    }
}

/// Evidence per rule: how many *distinct* phrases (or markers) fired it.
/// Long jailbreak templates pile up independent cues; one phrase repeated
/// counts once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fired([u8; RULES.len()]);

impl Default for Fired {
    fn default() -> Fired {
        Fired([0; RULES.len()])
    }
}

impl Fired {
    pub(super) fn insert(&mut self, rule: Rule) {
        if let Some(count) = self.0.get_mut(rule.index()) {
            *count = count.saturating_add(1);
        }
    }

    pub(super) fn union(&mut self, other: Fired) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = mine.saturating_add(theirs);
        }
    }

    pub(super) fn count(self, rule: Rule) -> u8 {
        self.0.get(rule.index()).copied().unwrap_or(0)
    }

    pub(super) fn contains(self, rule: Rule) -> bool {
        self.count(rule) > 0
    }

    pub(super) fn is_empty(self) -> bool {
        self.0.iter().all(|&count| count == 0)
    }
}

/// Distinct cues counted per rule: beyond this, more adds nothing.
const MAX_COUNTED_CUES: u8 = 3;

/// A rule's effective weight for `cues` distinct cues: the first counts in
/// full, each further one (up to [`MAX_COUNTED_CUES`]) at half weight.
pub(super) fn effective_weight(weight: f32, cues: u8) -> f32 {
    if cues == 0 {
        return 0.0;
    }
    let extra = i32::from(cues.min(MAX_COUNTED_CUES) - 1);
    1.0 - (1.0 - weight) * (1.0 - weight / 2.0).powi(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_in_discriminant_order_with_unique_ids() {
        for (index, info) in RULES.iter().enumerate() {
            assert_eq!(info.rule.index(), index, "{}", info.id);
            assert!(info.weight > 0.0 && info.weight < 1.0);
            assert_eq!(RULES.iter().filter(|other| other.id == info.id).count(), 1);
        }
    }

    #[test]
    fn fired_set_tracks_rules() {
        let mut fired = Fired::default();
        assert!(fired.is_empty());
        fired.insert(Rule::Persona);
        let mut other = Fired::default();
        other.insert(Rule::Override);
        fired.union(other);
        assert!(fired.contains(Rule::Persona) && fired.contains(Rule::Override));
        assert!(!fired.contains(Rule::Verbatim));
        fired.insert(Rule::Persona);
        assert_eq!(fired.count(Rule::Persona), 2);
    }

    #[test]
    fn further_cues_add_less_and_saturate() {
        assert_eq!(effective_weight(0.5, 0), 0.0);
        assert!((effective_weight(0.5, 1) - 0.5).abs() < 1e-6);
        let two = effective_weight(0.5, 2);
        assert!((two - 0.625).abs() < 1e-6, "{two}");
        assert_eq!(effective_weight(0.5, 3), effective_weight(0.5, 9));
    }
}
