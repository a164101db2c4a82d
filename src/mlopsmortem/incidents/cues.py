"""Word cues for triggers and detection: what a postmortem says when a deploy, an expired
certificate or a full disk set it off, and how it was noticed.

Cues are written from how postmortems are worded in general (not from any evaluation text).
A cue counts only in a sentence that does not negate it ("no alert fired", "not a deploy")
and only in sections that narrate the incident (weights in extract.SECTION_WEIGHTS).
"""

from __future__ import annotations

import re


def _cues(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")", re.IGNORECASE)


TRIGGER_CUES: dict[str, re.Pattern[str]] = {
    "deploy": _cues(
        r"(we|was|were|been|had|got|team) (re)?deployed",
        r"deploy(ing|ed)? (a|the|our|new|version|code|release|change)",
        r"(after|during|following|post-?|with|by) (a|the|an?|this|that)? ?"
        r"(deploy|deployment|release|rollout)\b",
        r"(new|recent|bad|faulty|unrelated) (deploy|deployment|release|rollout|version of)",
        r"rolled out",
        r"roll-?out of",
        r"(was|were) (released|shipped|merged)",
        r"(merged|shipped) (a|the)",
        r"code change",
        r"(pull request|pr) (was )?merged",
        r"release[ds]? (a|version|v\d)",
    ),
    "config-change": _cues(
        r"config(uration)? (change|update|error|mistake)",
        r"misconfigur",
        r"(changed|updated|modified|reduced|increased|lowered|set|switched|renamed|"
        r"overwrote|overwritten|removed) (the |a |our |its )?\S*\s?\S*\s?"
        r"(config|configuration|setting|flag|parameter|timeout|annotation|limit|value|"
        r"record|branch|rule|policy|variable)s?\b",
        r"(setting|flag|timeout|annotation|parameter|value)s? (was|were) (changed|set|updated|"
        r"reduced|overwritten|removed)",
        r"infrastructure[- ]as[- ]code",
        r"changes? (to|in) (the |our |a )?[\w./-]+( [\w./-]+)? "
        r"(caused|broke|led|triggered|resulted)",
        r"refactor(ing|ed)?",
        r"\biac\b",
        r"terraform (apply|change|plan)",
        r"default (setting|configuration|value)",
    ),
    "upgrade-or-migration": _cues(
        r"upgrad(e|ed|ing)",
        r"migrat(e|ed|ion|ing)",
        r"(version|image) bump",
        r"moved (to|from) (a |the )?(new|old)",
        r"new (cluster|node pool|database|version)",
        r"cut-?over",
    ),
    "expiry": _cues(
        r"expir(ed|y|ing|es|ation)",
        r"(certificate|cert|token|credential|licen[cs]e|domain)s? (was |were |had )?"
        r"(not )?renew",
        r"renewal",
    ),
    "traffic-surge": _cues(
        r"(traffic|load|request|usage|user)s? (spike|surge|increase|jump|peak)",
        r"(spike|surge|influx|increase|burst|flood) (in|of) (traffic|requests|load|users|usage)",
        r"hug of death",
        r"front page",
        r"went viral",
        r"(reddit|hacker news|hn|twitter) (post|thread)",
        r"(many|lots of|more|unusual(ly)? (high|many)) (users|requests|traffic|visitors)",
        r"(high|heavy|elevated|increased|peak) (load|traffic)",
        r"thundering herd",
        r"retry (storm|amplification)",
        r"retries (amplified|multiplied|overwhelmed)",
    ),
    "resource-exhaustion": _cues(
        r"out of (memory|disk|space|capacity|ips?|addresses|file descriptors|connections)",
        r"\boom(-?kill(ed|er)?)?\b",
        r"no (space|capacity|free (ip|address)|room) left",
        r"(disk|volume|partition|cluster|node)s? (was |were |is |became )?(full|filled)",
        r"filled up",
        r"ran out",
        r"running (low|out)",
        r"exhaust(ed|ion)",
        r"starv(ation|ed)",
        r"quota",
        r"(reached|hit|exceeded|hitting|reaching) (the |a |its |our |their )?\S*\s?\S*\s?"
        r"(limit|capacity|maximum|max|ceiling)",
        r"(limit|capacity|maximum) (was |were )?(reached|hit|exceeded)",
        r"memory (leak|pressure)",
        r"(pool|connection)s? (saturat|exhaust)",
        r"saturat(ed|ion)",
        r"too many (pods|connections|files|requests|consumer groups)",
    ),
    "dependency-failure": _cues(
        r"(aws|amazon|gcp|gce|gke|google cloud|azure|eks|cloudflare|github|fastly|akamai|"
        r"upstream|third[- ]party|provider|vendor|isp|saas)\b[^.]{0,40}"
        r"(outage|incident|issue|problem|bug|fail|down|degrad|block|broke|unavailab)",
        r"(outage|incident|issue|problem|failure|bug) (at|of|in|on|with) (the |our )?"
        r"(aws|amazon|gcp|"
        r"google|azure|github|cloudflare|the (cloud )?provider|our provider|the upstream|"
        r"a third[- ]party)",
        r"upstream (service|dependency|provider|outage)",
        r"third[- ]party (service|dependency|provider|outage)",
        r"(isp|provider|vendor) (started|began)? ?(blocking|block|throttl)",
    ),
    "hardware-or-power": _cues(
        r"hardware (failure|fault|issue|problem)",
        r"power (outage|failure|loss|cut)",
        r"(disk|drive|ssd|nic|psu|memory module|dimm) (failure|failed|died)",
        r"failed (disk|drive|ssd|power supply)",
        r"(cooling|hvac) (failure|failed)",
        r"lost power",
    ),
    "latent-bug": _cues(
        r"\bbug\b",
        r"race condition",
        r"regression",
        r"edge case",
        r"\bdefect\b",
        r"(a|an) (existing|latent|long-standing|known) (issue|flaw|problem)",
        r"unexpected(ly)? (behaviou?r|interaction)",
    ),
    "bad-data": _cues(
        r"bad (data|input|record|row|message|payload)",
        r"malformed",
        r"schema (change|mismatch|drift)",
        r"corrupt(ed|ion)",
        r"\bdrift\b",
        r"wrong (model|checkpoint|weights|data|version of the model)",
        r"(stale|invalid|poisoned|missing) (data|features|input|weights|checkpoint)",
        r"data (quality|pipeline) (issue|problem|failure)",
    ),
    "human-error": _cues(
        r"human error",
        r"manual(ly)? (ran|run|deleted|executed|changed|removed|step|command|action|"
        r"intervention|operation|cordon)",
        r"by mistake",
        r"(accidental(ly)?|mistaken(ly)?|inadvertent(ly)?|unintentional(ly)?)",
        r"\btypo\b",
        r"(ran|executed|typed) the wrong",
        r"fat[- ]finger",
        r"(engineer|operator|admin|someone|team member) (ran|executed|deleted|removed|"
        r"terminated|killed|applied)",
        r"(we|i) (deleted|killed|terminated|removed) (the|all|a)",
    ),
    "attack": _cues(
        r"attack(er|ers|ed)?\b",
        r"malicious",
        r"compromis(e|ed)",
        r"\bddos\b",
        r"breach",
        r"malware",
        r"\bworm\b",
        r"phishing",
        r"(stolen|leaked|exfiltrat\w*) (credentials|tokens?|secrets?|keys?)",
        r"supply[- ]chain",
        r"\babuse\b",
        r"crypto-?min(ing|er)",
    ),
    "automation": _cues(
        r"autoscal(er|ing|ed)",
        r"\bcron(job| job)?\b",
        r"scheduled (job|task|pipeline|script)",
        r"automatic(ally)? (job|process|cleanup|script|deletion|deleted|removed|reverted|"
        r"rescal|scal|triggered|ran|applied)",
        r"(cleanup|clean-up|garbage collection|gc) (job|script|process|task|ran)",
        r"\bcull(er|ing|ed)?\b",
        r"pipeline (ran|was triggered|triggered|applied|reverted|kicked)",
        r"(unexpectedly|automatically) triggere?d?",
        r"(bot|controller|operator) (deleted|removed|scaled|reverted)",
    ),
}

DETECTION_CUES: dict[str, re.Pattern[str]] = {
    "alert": _cues(
        r"alert(s|ed|ing)? (fired|triggered|went off|came in|from)",
        r"(got|received|were|was) (an? )?(automated )?(alert|paged|page|warning|notification)",
        r"(we|on-?call|engineer|team) (was |were |got )?(alerted|paged)",
        r"\bpager(duty)?\b",
        r"opsgenie",
        r"automated (warning|alert|monitoring|check|test)s?",
        r"(monitoring|prometheus|grafana|datadog|alertmanager|uptime ?robot|pingdom|statuscake|"
        r"health ?checks?|synthetic (checks?|tests?)|sentry)\b[^.]{0,40}"
        r"(detected|showed|picked|caught|alerted|fired|notified|reported|flagged|triggered|"
        r"started failing|failed)",
        r"alerted (us|the team|on-?call)",
        r"(when|once|after being|after we were|we were) (alerted|paged)",
        r"(detected|noticed|discovered|identified|found|caught|spotted) (by|through|via|thanks to|"
        r"as a result of|from|because of) (an? |our |the )?(automated |internal )?"
        r"(alert|monitoring|alarm|page|health ?check)",
        r"alarms? (fired|triggered|went off|sounded)",
        r"alerts? (for|on|about|regarding|indicating) \w+",
        r"first (alert|page|alarm)",
    ),
    "customer-report": _cues(
        r"(user|customer|client|developer|member of the community|community member|people|"
        r"end-users?)s? "
        r"(report|reports|reported|were reporting|complained|notified|told|contacted|opened|raised|"
        r"started reporting|alerted|"
        r"noticed|mentioned|asked|explained|explains|pinged|wrote)",
        r"reports? (from|of|by) (users|customers|clients|developers|the community)",
        r"(reported|notified|flagged|raised) (to us )?by (a |an |our |several |many )?"
        r"(user|customer|client|developer|community)",
        r"support (ticket|request|case|email)s?",
        r"(reports|complaints) of (issues|errors|problems)",
        r"(on|via|in) (gitter|twitter|the forum|discourse|the community)",
        r"(question|issue|message) (on|in) (the )?(gitter|forum|slack|github)",
    ),
    "internal-report": _cues(
        r"(we|an engineer|a team member|someone|one of (our|the) (engineers|team)|the team|"
        r"i|a developer on the team|staff) (first )?(noticed|spotted|discovered|saw|realised|"
        r"realized|observed|found)",
        r"(was|were) (first |quickly |soon )?(noticed|spotted|discovered) by (an? |our |the )?"
        r"(\w+ )?(engineer|team|colleague|member|sre|operator|developer|admin)",
        r"first noticed",
        r"\w+ (and \w+ )?(noticed|spotted) (that|at|the|a|an|something)",
    ),
}

# A cue in a sentence with one of these words before it is negated, or is a wish ("add
# alerting"), not an event.
NEGATION = re.compile(
    r"\b(no|not|never|without|missing|lack(ed|ing)?|absence|instead of|rather than|"
    r"should|would|could|will|add|adding|improve|consider|need|needs|ensure|"
    r"didn't|did not|wasn't|weren't|isn't|aren't|don't|doesn't)\b",
    re.IGNORECASE,
)
