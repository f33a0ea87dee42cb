"""Surface forms of ViGGO slot values, negation cues and clause limits: the data the slot
error rules match against (`utils.viggo.slot_errors`; see its docstring for the rules).

Phrases are regex fragments; a space matches any run of spaces, hyphens or slashes.
"""

from __future__ import annotations

import re

GENRES: dict[str, tuple[str, ...]] = {
    "action-adventure": (
        "action adventure",
        r"action(?:[\s,]+[\w']+){0,5}[\s,]+adventures?",
        r"adventure(?:[\s,]+[\w']+){0,5}[\s,]+action",
    ),
    "role-playing": (r"role playing", r"role play", r"RPGs?", r"roleplaying", r"role players?"),
    "MMORPG": (r"MMORPGs?", r"MMOs?", r"massively multiplayer online"),
    "driving/racing": (r"driving", r"racing", r"racers?", r"race", r"races", r"drive"),
    "hack-and-slash": (
        r"hack and slash",
        r"hack n slash",
        r"hack ?& ?slash",
        r"hack slash",
    ),
    "real-time strategy": (r"real time strategy", r"RTS(?:es|s)?", r"real time"),
    "turn-based strategy": (r"turn based strategy", r"turn based", r"TBS"),
    "point-and-click": (r"point and click", r"point ?& ?click"),
    "text adventure": (r"text adventures?", r"text based adventures?", r"text based"),
    "trivia/board game": (r"trivia", r"board games?"),
    "vehicular combat": (
        r"vehicular combat",
        r"vehicle combat",
        r"car combat",
        r"vehicular",
    ),
    "sport": (r"sports?", r"sporting"),
    "simulation": (r"simulations?", r"simulators?", r"sims?", r"simula\w*"),
    "platformer": (r"platformers?", r"platforming", r"platform game"),
    "shooter": (r"shooters?", r"shooting", r"shoot em up", r"FPS", r"shoot"),
    "puzzle": (r"puzzles?", r"puzzling", r"puzzler"),
    "strategy": (r"strategy", r"strategic", r"strategies"),
    "tactical": (r"tactical", r"tactics"),
    "indie": (r"indie", r"independent(?:ly)?"),
    "adventure": (r"adventures?", r"adventurous"),
    "action": (r"action", r"action packed"),
    "fighting": (r"fighting", r"fighters?", r"brawlers?", r"fight(?:s)?"),
    "music": (r"music", r"musical", r"rhythm"),
    "arcade": (r"arcade",),
    "pinball": (r"pinball",),
}

PLATFORMS: dict[str, tuple[str, ...]] = {
    "Nintendo Switch": (r"Nintendo Switch", r"(?-i:Switch)"),
    "PlayStation": (r"PlayStations?(?: ?[1-4])?", r"PS[1-4P]?", r"Playstation"),
    "Xbox": (r"X ?box(?: One| 360)?",),
    "PC": (r"PCs?", r"Windows", r"computers?", r"personal computers?"),
    "Nintendo": (
        r"Nintendo(?! Switch)",
        r"Wii U?",
        r"GameCube",
        r"3?DS",
        r"N64",
        r"SNES",
    ),
}

PERSPECTIVES: dict[str, tuple[str, ...]] = {
    "first person": (r"first person", r"1st person"),
    "third person": (r"third person", r"3rd person", r"over the shoulder"),
    "side view": (r"side view", r"side scroll(?:ing|er|ers)?", r"sidescroll(?:ing|er|ers)?",
                  r"side on", r"2D", r"side"),
    "bird view": (r"bird view", r"bird ?'?s ?eye(?: view)?", r"birds eye", r"top down",
                  r"isometric", r"overhead", r"aerial", r"bird", r"birdview"),
}  # fmt: skip

ESRB: dict[str, tuple[str, ...]] = {
    "E 10+ (for Everyone 10 and Older)": (
        r"E ?10 ?\+?",
        r"E10\+?",
        r"10 ?\+",
        r"10 and (?:up|older|over)",
        r"ten and (?:up|older)",
        r"(?:aged?|ages) (?:10|ten)",
        r"everyone 10",
        r"older than (?:10|ten)",
        r"over (?:10|ten)",
    ),
    "E (for Everyone)": (
        r"(?-i:E)(?! ?10) ?\(?for everyone\)?",
        r"(?:rated|rating of|ESRB) (?-i:E)(?! ?10)",
        r"(?-i:E)(?! ?10) (?:rated|rating|for everyone)",
        r"everyone(?! 10)",
        r"all ages",
        r"family friendly",
        r"all (?:audiences|age groups|ages)",
        r"(?:whole|entire) family",
        r"(?-i:E) content",
        r"kids?",
        r"children",
    ),
    "T (for Teen)": (
        r"(?-i:T) ?\(?for teens?\)?",
        r"(?:rated|rating of|ESRB) (?-i:T)",
        r"(?-i:T) (?:rated|rating)",
        r"teens?",
        r"teenagers?",
        r"teen rated",
        r"(?-i:T) content",
    ),
    "M (for Mature)": (
        r"(?-i:M) ?\(?for mature\)?",
        r"(?:rated|rating of|ESRB) (?-i:M)",
        r"(?-i:M) (?:rated|rating)",
        r"mature",
        r"adults?",
        r"grown ups?",
        r"18 ?\+",
        r"(?-i:M) content",
    ),
}

# Strict ESRB forms for hallucination scanning: "everyone"/"kids" alone prove nothing.
ESRB_STRICT: dict[str, tuple[str, ...]] = {
    "E 10+ (for Everyone 10 and Older)": (r"E ?10 ?\+", r"E10\+?"),
    "E (for Everyone)": (
        r"(?-i:E)(?! ?10) ?\(?for everyone\)?", r"(?:rated|rating of) (?-i:E)(?! ?10)",
        r"(?-i:E)(?! ?10) (?:rated|rating)",
    ),
    "T (for Teen)": (r"(?-i:T) ?\(?for teen\)?", r"(?:rated|rating of) (?-i:T)",
                     r"(?-i:T) (?:rated|rating)", r"teen rated"),
    "M (for Mature)": (r"(?-i:M) ?\(?for mature\)?", r"(?:rated|rating of) (?-i:M)",
                       r"(?-i:M) (?:rated|rating)", r"mature rated"),
}  # fmt: skip

# Negation prefix for opinion phrases: "not", "didn't", "never", "wasn't all that".
_NOT = (
    r"(?:not|never|hardly|\w+n't)(?: (?:really|that|too|very|so|all that|particularly|ever|"
    r"quite|exactly|overly|especially|a|much|enjoy|of|totally|your|my|the|feel))*"
)

_POSITIVE = (
    r"excellent", r"great(?:est)?", r"amazing(?:ly)?", r"awesome", r"fantastic", r"superb",
    r"brilliant", r"incredible", r"outstanding", r"wonderful", r"phenomenal", r"terrific",
    r"masterpiece", r"lov(?:e|ed|es|ing)", r"adored?", r"favou?rites?", r"best", r"top notch",
    r"highly", r"high(?:est)? (?:rated|ratings?|reviews?|marks|praise)", r"good", r"nice",
    r"solid", r"fun", r"enjoy(?:s|ed|ing|able|ment)?", r"lik(?:e|ed|es|ing)", r"fan",
    r"fond", r"positive(?:ly)?", r"impress(?:ive|ed)", r"cool", r"gorgeous", r"beautiful",
    r"excit(?:ed|ing)", r"addict(?:ive|ed|ing)", r"jackpot", r"stellar", r"prais(?:e|ed)",
    r"acclaim(?:ed)?", r"perfect(?:ion)?", r"blast", r"entertain(?:ing|ed)", r"recommend",
    r"really into", r"partial", r"pleased", r"satisf(?:ying|ied)", r"favorabl[ey]",
    r"remarkable", r"attract(?:s|ed|ive)?", r"appeal(?:s|ing)?", r"thrill(?:ed|ing)?",
    r"gush(?:ed|ing)?", r"infatuat\w*", r"king", r"unrivall?ed", r"(?:much )?better than",
    r"prefer(?:s|red)?", r"well (?:done|made|received|liked)", r"rave", r"raving",
    r"must (?:play|have)", r"hooked", r"captivat\w+", r"engag(?:ing|ed)", r"immers\w+",
    r"charm\w*", r"delight\w*", r"special", r"stand(?:s)? out", r"top", r"worth",
    r"passion\w*", r"wow(?:ed)?", r"big fan", r"quality", r"classic", r"pleasure",
    r"unique", r"dug", r"dig", r"irresist[ai]ble", r"gravitate", r"thumbs up",
)  # fmt: skip

_NEUTRAL = (
    r"average", r"okay", r"ok", r"alright", r"all right", r"mediocre", r"meh", r"decent",
    r"fine", r"mixed", r"middling", r"so ?so", r"passable", r"adequate", r"fair(?:ly)?",
    r"moderate(?:ly)?", _NOT + r" (?:great|good|bad|fond|impressive|special|amazing|exciting|"
    r"satisfying|fun|memorable|hate|love|like|enjoy|impress|excite|stand out|terrible|awful|"
    r"awesome|fan|big fan|into|best|excellent|wow|blown away|spectacular|outstanding|thrilled|"
    r"remarkable|much|all that|sold|entertaining|favou?rite|interested|strongly)",
    r"lack(?:ing|luster|lustre)", r"unremarkable", r"forgettable", r"uninspired",
    r"room for improvement", r"could (?:have )?be(?:en)? better", r"nothing special",
    r"strong feelings", r"just ok", r"rote", r"standard", r"run of the mill",
    r"nothing more", r"at best", r"ordinary", r"generic", r"boring", r"bland",
    r"disappoint(?:ing|ed|ment)?", r"underwhelm\w*", r"unimpress\w*", r"mid(?:dle)?",
    r"medium", r"modest", r"lukewarm", r"neither", r"on the fence", r"indifferent",
    r"ambivalent", r"pretty good", r"somewhat", r"kind of", r"sort of", r"kinda", r"sorta",
    r"tolerable", r"stale", r"dull", r"mildly", r"(?:only|just) (?:a )?(?:little|bit)",
    r"lacklustre", r"a bit", r"wasn't bad", r"not bad", r"so much", r"shrug", r"mediocrity",
    r"nothing (?:great|special|spectacular|remarkable|amazing)", r"half hearted", r"rushed",
    r"flawed", r"missing something", r"lacking something", r"(?:doesn't|didn't) stand out",
)  # fmt: skip

_NEGATIVE = (
    r"poor(?:ly)?", r"bad(?:ly)?", r"terrible", r"awful", r"horrible", r"horrendous",
    r"negative(?:ly)?", r"low", r"dislik(?:e|ed|es|ing)", r"hat(?:e|ed|es|ing)",
    _NOT + r" (?:like|enjoy|fan|fond|good|great|recommend|care|dig|jive|impress|stand|get into|"
    r"think much|find|do it|satisf\w+|worth|fun|into|keen|very good|appeal\w*|work)",
    r"disappoint(?:ing|ed|ment|s)?", r"dud", r"unhappy", r"boring", r"bored", r"worst",
    r"lacking", r"lackluster", r"mess(?:ed)? up", r"screwed up", r"suck(?:s|ed)?", r"crap\w*",
    r"weak", r"unacceptable", r"off putting", r"dreadful", r"mediocre", r"panned",
    r"sub ?par", r"trash", r"garbage", r"junk", r"frustrat\w+", r"annoy\w+", r"regret",
    r"waste", r"flop(?:ped)?", r"fail(?:s|ed|ure)?", r"let ?down", r"no fun",
    r"unimpress\w+", r"underwhelm\w*", r"critical", r"unenjoyable", r"unpleasant", r"lame",
    r"shoddy", r"broken", r"uninspired", r"bland", r"dull", r"tedious", r"lousy", r"avoid",
    r"neuter\w*", r"turn(?:ed|s)? (?:me )?off", r"stunk", r"stinks?", r"miss", r"cut below",
    r"unplayable", r"not much", r"nothing", r"worse", r"pointless", r"rubbish", r"dislike",
    r"(?:don't|didn't|can't) stand", r"poorest", r"lowest", r"least", r"unsatisf\w+",
    r"downhill", r"cringe\w*", r"hard to (?:like|enjoy|recommend)", r"wouldn't recommend",
    r"unfortunate(?:ly)?", r"yawn", r"ugh", r"blah", r"overrated",
)  # fmt: skip

RATING_LEX: dict[str, tuple[str, ...]] = {
    "excellent": _POSITIVE,
    "good": (*_POSITIVE, r"fine", r"pretty", r"okay", r"all right", r"decent"),
    "average": _NEUTRAL,
    "poor": _NEGATIVE,
}

# Explicit rating claims, used for "wrong" and hallucination (free opinions prove nothing).
RATING_STRICT: dict[str, tuple[str, ...]] = {
    "excellent": (r"(?:excellent|outstanding|stellar|great|glowing) (?:ratings?|reviews?|scores?)",
                  r"rated (?:very )?highly", r"highly rated", r"critically acclaimed"),
    "good": (r"good (?:ratings?|reviews?|scores?)", r"positive (?:ratings?|reviews?)",
             r"rated well", r"well rated", r"well received"),
    "average": (r"(?:average|mixed|middling|mediocre|lukewarm|decent) "
                r"(?:ratings?|reviews?|scores?)",
                r"average rated", r"rated (?:as )?average"),
    "poor": (r"(?:poor|bad|negative|low|terrible|weak) (?:ratings?|reviews?|scores?)",
             r"rated (?:very )?(?:poorly|badly|low)", r"poorly (?:rated|received|reviewed)"),
}  # fmt: skip

BOOLEAN_KEYWORDS: dict[str, tuple[str, ...]] = {
    "has_multiplayer": (
        r"multi ?player",
        r"multiple players",
        r"co ?op(?:erative)?",
        r"online play",
        r"with (?:your |my )?friends",
        r"with others",
        r"with other people",
        r"together",
        r"pvp",
        r"online",
        r"split screen",
        r"(?:2|two|four|4) players?",
    ),
    "available_on_steam": (r"Steam",),
    "has_linux_release": (r"Linux", r"SteamOS", r"Ubuntu"),
    "has_mac_release": (r"Macs?", r"Mac ?OS(?: X)?", r"OS ?X", r"Apple", r"Macintosh"),
}

# Forms that assert the negative on their own, no negation cue needed.
BOOLEAN_NEGATIVE: dict[str, tuple[str, ...]] = {
    "has_multiplayer": (
        r"single ?player(?:s)?",
        r"singleplayer",
        r"solo",
        r"one player",
        r"1 player",
        r"by (?:yourself|myself|themselves|oneself)",
        r"on (?:your|my) own",
        r"alone",
    ),
    "available_on_steam": (),
    "has_linux_release": (),
    "has_mac_release": (),
}

NEGATION_CUE = re.compile(
    r"(?<!\w)(?:no|not|non|cannot|without|lacks?|lacking|lack of|neither|nor|never|except|"
    r"excluding|unavailable|unsupported|absence|absent|missing|miss|wish(?:ed)?|if only|"
    r"sadly|none|yet to)(?!\w)|n't",
    re.IGNORECASE,
)
# A negated opinion ("not fond of games on Steam") says nothing about availability.
OPINION_NEGATION = re.compile(
    r"(?:\bnot|n't|\bnever|\bno)\s+(?:\w+\s+){0,2}?(?:enjoy|like|fond|care|dig|into|interested|"
    r"fan|sold|keen|happy|many|much|great|good|bad|real|fun|worth|impress|too|at all|idea)\w*",
    re.IGNORECASE,
)
# Words skipped when measuring how far a negation cue is from a keyword.
FILLERS = frozenset({
    "a", "an", "the", "either", "or", "and", "on", "for", "in", "of", "via", "through", "any",
    "release", "releases", "version", "versions", "support", "platform", "platforms", "system",
    "systems", "both", "be", "been", "it", "this", "game",
})  # fmt: skip
AFTER_NEGATION_CUE = re.compile(
    r"^\W*(?:\w+\W+){0,4}?(?:not|cannot|n't|unavailable|unsupported|absent|missing|lacking|"
    r"dropped|out of luck|\w+n't)(?!\w)",
    re.IGNORECASE,
)
# Clause limits for the negation window before a keyword; "and" starts a new clause when
# a verb or subject follows ("not on Steam and has a Mac release").
CLAUSE_BREAK = re.compile(
    r"[.;!?()]|(?<!\w)(?:but|however|though|although|while|whereas|whilst|instead)(?!\w)|"
    r",\s*(?=(?:it|you|there|they|and it|and you|and there)\b)|"
    r"(?<!\w)and (?=(?:has|have|is|it|it's|its|there|there's|you|can|was|features?|offers?|"
    r"supports?|comes?|does|runs?|plays?|also)\b)",
    re.IGNORECASE,
)
# ... and after it; "and"/"or" end the window unless another platform keyword follows
# ("Linux and Mac are not supported" negates both, "Steam and is not on Linux" only Linux).
AFTER_STOP = re.compile(
    r"[.;!?,()]|(?<!\w)(?:but|however|though|while|yet)(?!\w)|"
    r"(?<!\w)(?:and|or)(?!\s+(?:the\s+)?(?:mac|macos|os x|linux|steam|pc|windows|apple)\b)\b",
    re.IGNORECASE,
)
# "everything but Mac and Linux": an exception reads as negation despite the "but".
EXCEPT_BUT = re.compile(
    r"(?<!\w)(?:everything|anything|all|any|everywhere|each|every \w+) (?:but|except(?: for)?|"
    r"other than|besides)\W+(?:\w+\W+){0,3}$",
    re.IGNORECASE,
)

CONCEPTS: dict[str, tuple[str, ...]] = {
    "name": (r"name", r"title", r"games?"),
    "release_year": (r"years?", r"release[sd]?", r"came out", r"old", r"new", r"recent", r"era"),
    "exp_release_date": (r"release", r"date", r"coming out", r"upcoming"),
    "developer": (r"developers?", r"developed", r"studios?", r"compan(?:y|ies)", r"makers?",
                  r"made by", r"devs?", r"creators?"),
    "genres": (r"genres?", r"types?", r"kinds?", r"sorts?", r"categor(?:y|ies)", r"styles?"),
    "player_perspective": (r"perspectives?", r"views?", r"person", r"camera", r"viewpoint"),
    "platforms": (r"platforms?", r"consoles?", r"systems?", r"devices?", r"hardware"),
    "esrb": (r"ESRB", r"rated", r"ratings?", r"age", r"content"),
    "rating": (r"ratings?", r"rated", r"reviews?", r"scores?"),
    "specifier": (r"\w+",),
}  # fmt: skip

YEAR_RE = re.compile(r"(?<!\w)(?:19[7-9]\d|20[0-2]\d)(?!\w)")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
