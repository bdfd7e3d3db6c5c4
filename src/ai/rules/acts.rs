//! Which dialogue acts a message performs, by keyword patterns, most important first.

use std::sync::LazyLock;

use regex::Regex;
use sara_actors::understanding::Act;

/// What the slot extractors found, which decides `Inform` and `Choose`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Cues {
    /// A date, time, part of day, name or email was given.
    pub informs: bool,
    pub service: bool,
    pub choice: bool,
    /// "Later" / "earlier" said while times are offered or proposed.
    pub lean: bool,
    /// Sara's last line asked a yes/no question about one thing ("Shall I book 10 AM?").
    pub confirming: bool,
}

/// Asking whether a time or service is available is a booking request, not a question for
/// the FAQ: "how about Monday?", "any openings Friday?", "do you have a cleaning Wednesday?".
static AVAILABILITY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:(?:any|anything|something|some|got)\s+(?:(?:free|open|available)\s+)?(?:openings?|availability|available|free|open|slots?|times?|spots?|space|room|appointments?|dates?|days?)|(?:do|would|will|did) you (?:have|still have|happen to have|guys have) (?:any(?:thing)?|a|an|some|space|room|time|availability|openings?|slots?)|have you (?:got )?(?:any(?:thing)?|a|an|some|space|room|time)|are you (?:free|available|booked|busy)|is (?:there|it|that|he|she) (?:any(?:thing)?\s+|a |an )?(?:free|available|opening|slot|space|time|availability|appointment|taken|booked)|(?:how|what) about|can you (?:fit|squeeze|do)|any chance|(?:is|are) (?:\w+ )?(?:free|available)\s+(?:on|at|for|tomorrow|today|this|next|monday|tuesday|wednesday|thursday|friday|saturday|sunday|\d)|(?:works?|suits?) for you)\b",
    )
});
/// Words that ask the knowledge base something even inside an availability ask.
static FAQ_TOPIC: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:parking|park (?:my|the|a|there|nearby|near|on)|where|address|located|location|directions|how much|price|prices|cost|costs|fee|fees|charge|insurance|payment|pay|wheelchair|policy|opening hours|hours|website|phone number)\b",
    )
});

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in pattern is valid")
}

static HANDOVER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:(?:talk|speak|chat)\s+(?:to|with)\s+(?:a |an |the |your )?(?:someone|somebody|person|human|real|live|staff|receptionist|manager|agent|representative|operator|doctor|dentist|front desk|people)|real person|real human|live (?:person|agent)|actual person|a human|human being|operator|representative|human|transfer me|put me through|call me back|someone real|not a (?:bot|robot|machine)|are you a (?:bot|robot)|speak to someone)\b",
    )
});
static OUT_OF_SCOPE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:prescri\w*|refill\w*|diagnos\w*|medication\w*|medicine|dosage|dose|test results?|lab results?|x-?ray results?|medical advice|antibiotics?|painkillers?|pills?|symptoms?|is it serious|what should i take|sick note|doctor'?s note)\b",
    )
});
static CANCEL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:cancel\w*|call off|calling off|drop my (?:appointment|booking)|delete my (?:appointment|booking)|remove my (?:appointment|booking)|(?:won't|will not|can't|cannot|can not|couldn't|could not|not able to|unable to) (?:make|come to|attend|do) (?:it|my|the|that|this|tomorrow|today|monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b)",
    )
});
/// Asking about cancelling ("what is your cancellation policy?", "is there a cancellation
/// fee?") is a question, not a request to cancel.
static ABOUT_CANCELLING: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\bcancell?ation (?:polic\w*|fees?|charges?|rules?|terms|period|window|notice)\b|\b(?:polic\w*|fees?|charges?) (?:for|on|about) cancel\w*|\b(?:how|when) (?:do|can|could|would) (?:i|you|we) cancel|\bhow (?:late|far ahead|long before) can i cancel",
    )
});
static RESCHEDULE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:re-?schedul\w*|re-?book\w*|move (?:my|the|our|it|that|this|them)\b|(?:change|switch|shift) (?:my|the|our) (?:\w+ )?(?:appointment|booking|visit|\w+ to\b)|(?:make|change|switch|swap) (?:it|that|this)\b[^.?!]*\binstead|(?:can|could) (?:we|i|you) (?:do|go for|have|switch to)\b[^.?!]*\binstead|change (?:my|the) (?:appointment|booking|visit)|push (?:it|my appointment|the appointment) (?:back|forward)|bring (?:it|my appointment) forward|postpone\w*|different (?:day|date) for my)\b",
    )
});
static OTHER_OPTIONS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:any ?(?:one|body) else|some ?(?:one|body) else|who else|what else (?:do you|is there|have you|you got|is available)|any others?|(?:are there|is there|have you|do you have|got|see|find|show me|know of|suggest|recommend) (?:any |some )?(?:other|others|more|additional|different)|(?:other|more|additional|different|alternative) (?:options?|times?|slots?|openings?|days?|dates?|choices?|ones?|therapists?|doctors?|dentists?|stylists?|salons?|places?|providers?|psychiatrists?|psychologists?|hours?|availability|suggestions?)|alternatives?|(?:any ?thing|some ?thing|any ?time) (?:else|later|earlier|different|sooner)|(?:later|earlier|sooner) (?:one|time|slot|option)s?\?|some others|the only|any ?(?:one|body|thing) other|what else\b|(?:none|neither) of (?:those|these|them) (?:work|suit)\w*|a few to choose from|(?:search|look|check) again|keep (?:looking|searching)|another (?:option|time|slot|one|therapist|doctor|dentist|stylist|salon|place|day|provider)|else (?:available|you can recommend)|(?:is|are) there (?:any ?(?:one|thing))?\s*(?:else|later|earlier))\b",
    )
});
static BOOK: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:book\w*|schedul\w*|reserv\w*|appointments?|make (?:an?|one|me an?) (?:appointment|booking|visit|reservation)|set (?:me |one |it |something )?up|fit me in|squeeze me in|come in|get in|see (?:the|a) (?:doctor|dentist|hygienist|stylist|therapist)|visit|put me (?:down|in)|pencil me in|sign me up|get me in)\b",
    )
});
static QUESTION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:^|[.!?,]\s*|\b(?:and|also|ok|okay|so|but)\s+)(?:what|where|how|which|who|why|when|do you|do they|does|is (?:there|it|he|she|the|that|this|their|his|her)|are (?:you|they|the|there)|can i|could i|may i|(?:tell|give|send) me (?:the|their|his|her|your|its|a |an )|i need (?:the|their|his|her|your)|i'd like (?:the|their|his|her|your))\b|\b(?:let me know|address|phone number|contact (?:info|information|number|details)|rating|rated|reviews?|unisex|cosmetic|website|their number|his number|her number|the number|located|location|directions|parking|park|price|prices|cost|costs|fee|fees|how much|hours|open|insurance|accept|payment|pay|wheelchair|policy)\b",
    )
});
/// "Can I / could I / may I …" asks a question only when it is not asking to book.
static MODAL_ASK: LazyLock<Regex> = LazyLock::new(|| re(r"\b(?:can|could|may) i\b"));
static DENY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:oh |well |actually,? |um,? |uh,? |sorry,? |hmm,? )*(?:no\b|nope|nah|nay|negative|not really|not now|not right now|not at the moment|not yet|not that|not quite|i don't think so|never ?mind)|\b(?:(?:doesn't|does not|won't|will not|wouldn't|would not|don't|do not|can't|cannot|isn't|is not) (?:work|suit|fit|be able)|not (?:work|suit|good|going to work|convenient|possible)|can't make|cannot make|(?:i've|i have) changed my mind|changed my mind|nothing else|not interested|no thanks|no thank you|maybe (?:later|another time|at a later time|in the future|some other time|next time)|not for now|that's not right|that is not right|that's wrong|incorrect)\b",
    )
});
/// A message that opens with a clear yes: it answers Sara's question before anything else.
static AFFIRM_LEAD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:oh |well |um,? |uh,? )*(?:yes|yeah|yea|yep|yup|ya|yah|sure|absolutely|definitely|certainly|of course|correct|exactly|most definitely|please do|go ahead)\b",
    )
});
/// A message that opens with a clear no.
static DENY_LEAD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:oh |well |actually,? |um,? |uh,? |sorry,? |hmm,? )*(?:no\b|nope|nah|negative|not (?:really|now|right now|just now|just yet|yet|at the moment|today|for now)|nothing\b|never ?mind|(?:maybe|perhaps) (?:later|another time|some other time|at a later|in a bit|in the future|next time|not)|i (?:don't|do not) (?:want|need|wish|think)|i'?d rather not|i'?m not (?:interested|looking|ready)|i'?ll pass)",
    )
});
static DEFERRAL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:no,? |well,? )?(?:maybe|perhaps) (?:later|another time|some other time|at a later|in a bit|in the future|next time)",
    )
});
static AFFIRM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:yes|yeah|yea|yep|yup|sure|correct|(?:i|we) can (?:do|make) (?:that|it))\b|\b(?:sounds (?:good|great|fine|perfect|lovely|nice|ok|okay|about right|right|wonderful)|that works|works for me|will work|that'?s (?:fine|great|perfect|good|correct|right|ok|okay|it|wonderful|lovely|excellent)|that is (?:fine|great|perfect|good|correct|right)|it'?s (?:fine|ok|okay|good|perfect|great)|it is (?:fine|ok|okay|good|perfect|great)|that would be (?:fine|great|perfect|good|wonderful|nice|lovely)|(?:is|are|be) (?:fine|perfect|great|correct|right) with me|(?:it's|that's|it is|that is) a deal|i like (?:the sound of|that|it)|please do|go ahead|let'?s do (?:it|that)|book it|i'll take it|i will take it|suits me|is correct|are correct|are right|is right|is fine|is perfect|is great)\b|\b(?:that|this|it|that 1|that one|this one)\s+(?:sounds?|seems?|looks?|is|would|should|will|could)\s+(?:\w+\s+){0,2}(?:good|great|nice|fine|okay|ok|perfect|work|do|suit|lovely|excellent|wonderful)\b|\b(?:i'm|i am) (?:good|fine|ok|okay|happy|content) with\b|\b(?:sounds?|seems?|looks?) (?:\w+ ){0,2}(?:good|great|nice|fine|perfect|okay|ok|ideal|excellent|wonderful|lovely|right)\b|\b(?:like|interested in|go with|take) (?:that|this|it|that one|this one|that 1|this 1)\b|\btry (?:it|that)\b|\ball correct\b|\ba good (?:one|choice)\b",
    )
});
/// A soft opener ("ok", "great") is a yes only when nothing else is said.
static AFFIRM_SOFT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:oh |well |um,? |uh,? )*(?:ok|okay|k|y|alright|all right|right|perfect|great|awesome|excellent|fine|good|cool|lovely|wonderful|nice|sounds|confirm\w*|do it)\b",
    )
});
/// Wanting a named service is asking to book it ("I need a cleaning").
static WANT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:i want|i'd like|i would like|i need|can i get|can i have|could i get|could i have|looking for|interested in)\b",
    )
});
static THANKS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:thanks?|thank you|thankyou|thx|appreciate\w*|grateful|thankful|cheers|much obliged)\b",
    )
});
static GOODBYE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:bye|goodbye|good bye|bye-bye|see you|see ya|take care|have a (?:good|great|nice|wonderful|lovely) (?:day|one|night|evening|weekend)|that'?s all|that is all|that will be all|that'?ll be all|that would be all|that'?s it|that is it|that'?s everything|all for (?:now|today)|good night|later!?$)\b",
    )
});
static GREET: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^\s*(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|greetings|howdy|yo)\b")
});

/// Whether the message names something the knowledge base is asked about (parking, prices,
/// opening hours, …).
pub(super) fn names_faq_topic(norm: &str) -> bool {
    FAQ_TOPIC.is_match(norm) || norm.contains("close") || norm.contains("open ")
}

/// The acts of a normalised message, most important first.
pub(super) fn detect(norm: &str, cues: Cues) -> Vec<Act> {
    let mut acts = Vec::new();
    let mut push = |act: Act, yes: bool| {
        if yes && !acts.contains(&act) {
            acts.push(act);
        }
    };
    push(Act::Handover, HANDOVER.is_match(norm));
    push(Act::OutOfScope, OUT_OF_SCOPE.is_match(norm));
    let asks_about_cancelling = ABOUT_CANCELLING.is_match(norm);
    push(Act::Cancel, CANCEL.is_match(norm) && !asks_about_cancelling);
    push(Act::Choose, cues.choice);
    push(Act::Inform, cues.informs);
    let reschedule = RESCHEDULE.is_match(norm);
    push(Act::Reschedule, reschedule);
    // "maybe another time" puts the booking off; it does not ask for other times.
    let other = (OTHER_OPTIONS.is_match(norm) || (cues.lean && !GOODBYE.is_match(norm)))
        && !DEFERRAL.is_match(norm);
    push(Act::OtherOptions, other);
    push(Act::Deny, DENY_LEAD.is_match(norm));
    push(Act::Affirm, AFFIRM_LEAD.is_match(norm));
    let book = (BOOK.is_match(norm) || (cues.service && WANT.is_match(norm))) && !reschedule;
    push(Act::Book, book);
    // "Can I book a cleaning tomorrow?" is a booking, not a question for the FAQ.
    // "Could I do it an hour later?" asks for a time, as "can I book …" asks for a booking.
    let question = QUESTION.is_match(norm)
        && !((book || cues.informs)
            && MODAL_ASK.is_match(norm)
            && !QUESTION.is_match(&MODAL_ASK.replace_all(norm, "")));
    // "Any openings Friday?", "how about Monday": asks for a time, not for the FAQ, unless
    // an FAQ topic is named too ("do you have any parking?").
    let availability =
        AVAILABILITY.is_match(norm) && !FAQ_TOPIC.is_match(&AVAILABILITY.replace_all(norm, " "));
    // "Could I swap to the whitening?" asks for the service, not the FAQ.
    let asks_for_service = cues.service
        && MODAL_ASK.is_match(norm)
        && !FAQ_TOPIC.is_match(norm)
        && !QUESTION.is_match(&MODAL_ASK.replace_all(norm, ""));
    let question = question && !availability && !asks_for_service;
    // Asking after free times is asking to book.
    let book = book || (availability && !reschedule && (cues.informs || cues.service));
    push(Act::Book, book);
    push(Act::Question, asks_about_cancelling || (!other && question));
    push(Act::Deny, DENY.is_match(norm));
    // "not sure" is doubt, not a yes.
    let unsure = norm.contains("not sure") || norm.contains("unsure");
    push(Act::Affirm, !unsure && AFFIRM.is_match(norm));
    push(Act::Thanks, THANKS.is_match(norm));
    push(Act::Goodbye, GOODBYE.is_match(norm));
    // A soft "great" / "ok" next to thanks or bye is politeness, not a yes.
    push(Act::Affirm, AFFIRM_SOFT.is_match(norm));
    push(Act::Greet, GREET.is_match(norm));
    // A service named on its own ("a cleaning please") gives a slot.
    push(Act::Inform, cues.service);
    // After "Shall I book 10 AM?", "great, thanks" says yes before it thanks.
    if cues.confirming
        && !acts.contains(&Act::Deny)
        && let Some(at) = acts.iter().position(|a| *a == Act::Affirm)
        && let Some(polite) = acts
            .iter()
            .position(|a| matches!(a, Act::Thanks | Act::Goodbye | Act::Greet))
        && polite < at
    {
        let affirm = acts.remove(at);
        acts.insert(polite, affirm);
    }
    acts
}
