"""ViGGO meaning representations (MRs): parsing, formatting and a slot error rate (SER).

An MR looks like ``inform(name[Tetris], genres[puzzle, strategy], has_multiplayer[yes])``:
one dialogue act wrapping comma-separated ``slot[value]`` pairs. ``genres``, ``platforms``
and ``player_perspective`` hold comma-separated lists whose order carries no meaning, so
parsed MRs compare order-insensitively (slots and list items alike).
``request_attribute`` MRs carry one slot with an empty value, e.g. ``esrb[]``.

Slot error rate
---------------
``slot_errors(mr, sentence)`` checks a generated sentence against its MR with hand-written
surface rules. The unit of counting is one *slot item*: every item of a list slot counts on
its own (``genres[action, shooter]`` is two units), every other slot, including an empty
request_attribute slot, is one unit. ``total`` is the number of units in the MR.

Per unit the outcome is one of:

* **realised** - a surface form of the value is found (lexicons below: "RPG" for
  role-playing, "rated M" for M (for Mature), "single-player" for has_multiplayer[no],
  "loved" for rating[excellent], ...). Booleans are decided by polarity: a mention of the
  keyword ("multiplayer", "Steam", "Linux", "Mac") is negative when a negation cue ("no",
  "not", "n't", "without", "lacks", ...) sits in the same clause a few words before it or
  right after it ("Linux and Mac are not supported").
* **wrong** - the value is not found but a *different* value of the same slot is: another
  game name / developer / year / ESRB class / platform / genre / perspective, a boolean
  realised with the opposite polarity, or an explicit rating of another class ("poor
  reviews" for rating[excellent]). A mention consumed as "wrong" is not also counted as a
  hallucination. For list slots, missing items and foreign items of the same slot are paired
  up: each pair is one wrong unit.
* **missing** - neither the value nor a rival value of the slot is found.

A **hallucination** is a value mention not licensed by the MR, found after all MR values
have been located and masked out of the sentence. Only closed vocabularies are scanned: the
game names and developers of the training split (case-sensitive, so "driver" the word is not
the game "Driver"), four-digit years 1970-2029, ESRB classes, platforms, genres, player
perspectives, explicit rating phrases ("excellent reviews", "rated poorly") and, when their
slot is absent, the words "multiplayer"/"single-player", "Steam", "Linux" and "Mac". Each
distinct foreign value counts once. A few forms realise two values without being used up:
"FPS" (first person + shooter), "first and third person" (both perspectives).

``ser = (missing + wrong + hallucinated) / total``; it can exceed 1 for a sentence that
hallucinates more values than the MR has slots.

Empty request_attribute slots count as realised when the sentence mentions the attribute
itself ("perspective", "platform", "ESRB", "Steam", ...) or any value of it.

Known limits: rating is the loosest slot. Opinions are phrased freely ("didn't have strong
feelings about", "hit the jackpot"), so the lexicons are generous and the rating classes
overlap (excellent/good share positive words, average/poor share lukewarm ones); a sentence
gets "wrong" for rating only through an explicit rating of a clearly other class. Negation
is a clause-local heuristic, not a parse, so rhetorical questions ("Don't you like games on
Mac?") can flip a boolean. ``specifier`` is matched literally (light inflection allowed).
Names and developers are matched case-insensitively with punctuation ignored when they are
the MR's own value (a title may be shortened to the part before ':'), but case-sensitively
when scanned as rivals.

Reference check (each human reference scored against its own MR): corpus SER 0.62% on test
(31 errors / 4,965 units), 0.63% on train, 0.88% on validation; most remaining "errors" are
genuine slips in the references.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

DIALOGUE_ACTS: tuple[str, ...] = (
    "inform",
    "confirm",
    "give_opinion",
    "recommend",
    "request",
    "request_attribute",
    "request_explanation",
    "suggest",
    "verify_attribute",
)

# Order used by format_mr; it is the order the ViGGO MRs mostly follow.
SLOTS: tuple[str, ...] = (
    "name",
    "release_year",
    "exp_release_date",
    "developer",
    "genres",
    "player_perspective",
    "platforms",
    "esrb",
    "rating",
    "has_multiplayer",
    "available_on_steam",
    "has_linux_release",
    "has_mac_release",
    "specifier",
)

LIST_SLOTS: frozenset[str] = frozenset({"genres", "platforms", "player_perspective"})
BOOLEAN_SLOTS: frozenset[str] = frozenset(
    {"has_multiplayer", "available_on_steam", "has_linux_release", "has_mac_release"}
)

# Closed vocabularies, collected from the training split.
GAME_NAMES: tuple[str, ...] = (
    "A Way Out", "Age of Empires II: The Age of Kings", "Age of Wonders II: The Wizard's Throne",
    "Alan Wake's American Nightmare", "Ancient Cities", "Anthem",
    "Assassin's Creed Chronicles: India", "Assassin's Creed II", "Assetto Corsa",
    "Battlefield V", "BioShock", "Bus Driver", "Call of Duty: Advanced Warfare",
    "Commandos: Behind Enemy Lines", "Crysis", "Dance Dance Revolution Universe 3",
    "Diablo II", "Dirt: Showdown", "Driver", "Euro Truck Simulator", "F1 2014", "FIFA 12",
    "Far Cry 3", "Final Fantasy VII", "Football Manager 2015", "God of War",
    "Grand Theft Auto V", "Guitar Hero: Smash Hits", "Half-Life 2",
    "Hellblade: Senua's Sacrifice", "Heroes of Might and Magic III: The Restoration of Erathia",
    "Hitman 2", "Horizon: Zero Dawn", "Lara Croft and the Temple of Osiris", "Layers of Fear",
    "Life is Strange", "Little Big Adventure", "Little Nightmares", "Madden NFL 15", "Mafia",
    "Mass Effect 2", "Max Payne", "Metal Gear Solid 3: Snake Eater", "Metro 2033",
    "Metro Exodus", "Metroid Prime Pinball", "Might & Magic: Heroes VI",
    "Mirror's Edge Catalyst", "MotorStorm: Apocalypse", "NBA 2K16", "NBA 2K19", "NHL 15",
    "Need for Speed: Most Wanted", "Need for Speed: Payback", "Need for Speed: Shift",
    "Need for Speed: The Run", "Never Alone", "Nightshade", "Ori and the Blind Forest",
    "Outlast II", "Payday 2", "Portal 2", "Quantum Break", "Resident Evil 4",
    "Rise of the Tomb Raider", "Rocket League", "Rollcage", "RollerCoaster Tycoon",
    "Shadow of the Tomb Raider", "Sid Meier's Civilization V", "Silent Hill 2", "Skyforge",
    "Small World 2", "SpellForce 3", "Spider-Man", "StarCraft", "Stronghold 2",
    "Super Bomberman", "Super Mario World", "Superhot", "Tetris", "The Crew 2",
    "The Elder Scrolls Online", "The Elder Scrolls V: Skyrim", "The Forest of Doom",
    "The Last of Us", "The Legend of Zelda: Ocarina of Time", "The Room", "The Sims",
    "The Vanishing of Ethan Carter", "The Witcher 3: Wild Hunt", "The Wolf Among Us",
    "Tom Clancy's Splinter Cell: Chaos Theory", "Tom Clancy's The Division",
    "Tomb Raider: The Angel of Darkness", "Tomb Raider: The Last Revelation",
    "Tony Hawk's Pro Skater 3", "TrackMania Turbo", "Transport Tycoon", "Trivial Pursuit",
    "Uncharted 4: A Thief's End", "Undertale", "Warcraft III: Reign of Chaos",
    "World of Warcraft", "World of Warcraft: Battle for Azeroth", "Worms: Reloaded",
)  # fmt: skip

DEVELOPERS: tuple[str, ...] = (
    "2K Boston", "4A Games", "Adeline Software International", "Allods Online",
    "Attention To Detail", "Beenox", "Bethesda Game Studios", "BioWare",
    "Black Hole Entertainment", "Blizzard Entertainment", "Blizzard North", "Bloober Team",
    "CD Projekt RED", "Capcom Production Studio 4", "Chris Sawyer", "Climax Studios",
    "Codemasters Birmingham", "Codemasters Southam", "Core Design", "Crystal Dynamics",
    "Crytek Frankfurt", "Days of Wonder", "Dontnod Entertainment", "EA Canada",
    "EA Digital Illusions CE", "EA Redwood Shores", "EA Tiburon", "Eidos Montréal",
    "Electronic Arts", "Ensemble Studios", "Evolution Studios", "Firaxis Games",
    "Firebrand Games", "Firefly Studios", "Fireproof Games", "Fuse Games", "Ghost Games",
    "Grimlore Games", "Guerrilla Games", "Hazelight Studios", "Hudson Soft", "IO Interactive",
    "Illusion Softworks", "Insomniac Games", "Ivory Tower", "Konami",
    "Konami Computer Entertainment Japan", "Konami Computer Entertainment Tokyo",
    "Kunos Simulazioni", "Loki Software", "Massive Entertainment", "Maxis", "MicroProse",
    "Moon Studios", "Nadeo", "Naughty Dog", "Neversoft Entertainment", "Ninja Theory",
    "Nintendo EAD", "Overkill Software", "Psyonix", "Pyro Studios", "Red Barrels",
    "Red Entertainment Corporation", "Reflections Interactive", "Remedy Entertainment",
    "Rockstar North", "SCS Software", "SIE Santa Monica Studio", "SUPERHOT Team",
    "Sledgehammer Games", "Slightly Mad Studios", "Spectrum HoloByte, Inc", "Sports Interactive",
    "Square", "Tarsier Studios", "Team17 Digital Ltd", "Telltale Games", "The Astronauts",
    "Tin Man Games", "Triumph Studios", "Ubisoft Massive", "Ubisoft Montreal", "Uncasual Games",
    "Upper One Games", "Valve Corporation", "Visual Concepts", "ZeniMax Online Studios",
    "tobyfox",
)  # fmt: skip


class MRParseError(ValueError):
    """Raised by parse_mr for text that is not a well-formed ViGGO MR."""


@dataclass(frozen=True)
class MeaningRepresentation:
    """A parsed MR in canonical order, so that == and hash ignore slot and item order."""

    act: str
    slots: tuple[tuple[str, tuple[str, ...]], ...]

    def get(self, slot: str) -> tuple[str, ...] | None:
        """Values of ``slot`` (``()`` for an empty slot), or None when the MR lacks it."""
        for name, values in self.slots:
            if name == slot:
                return values
        return None

    def slot_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.slots)

    def pairs(self) -> set[tuple[str, str]]:
        """(slot, value) pairs with list values expanded per item; empty slots map to ''."""
        out: set[tuple[str, str]] = set()
        for name, values in self.slots:
            for value in values or ("",):
                out.add((name, value))
        return out


# ---------------------------------------------------------------------------- parsing

_MR_RE = re.compile(r"^\s*([A-Za-z_]+)\s*\((.*)\)\s*$", re.DOTALL)
_SLOT_RE = re.compile(r"\s*([A-Za-z_]+)\s*\[([^\[\]]*)\]\s*")


def _item_key(slot: str, item: str) -> tuple[int, str]:
    # Platforms keep the dataset's conventional order; other lists sort alphabetically.
    order = ("PlayStation", "Xbox", "Nintendo", "Nintendo Switch", "PC")
    if slot == "platforms" and item in order:
        return (order.index(item), "")
    return (len(order), item.lower())


def _canonical_slots(
    raw: Iterable[tuple[str, tuple[str, ...]]],
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    items = []
    for slot, values in raw:
        unique = sorted(set(values), key=lambda v: _item_key(slot, v))
        items.append((slot, tuple(unique)))
    return tuple(sorted(items, key=lambda kv: SLOTS.index(kv[0])))


def _split_value(slot: str, value: str) -> tuple[str, ...]:
    value = " ".join(value.split())
    if not value:
        return ()
    if slot in LIST_SLOTS:
        items = tuple(v.strip() for v in value.split(","))
        if any(not v for v in items):
            raise MRParseError(f"empty item in list slot {slot}[{value}]")
        return items
    return (value,)


def parse_mr(text: str) -> MeaningRepresentation:
    """Parse ``act(slot[value], ...)``; raise MRParseError saying what is wrong."""
    if not isinstance(text, str):
        raise MRParseError(f"MR must be a string, got {type(text).__name__}")
    match = _MR_RE.match(text)
    if match is None:
        raise MRParseError(f"expected 'act(slot[value], ...)', got {text!r}")
    act, body = match.group(1), match.group(2)
    if act not in DIALOGUE_ACTS:
        raise MRParseError(f"unknown dialogue act {act!r} in {text!r}; valid: {DIALOGUE_ACTS}")
    raw: list[tuple[str, tuple[str, ...]]] = []
    pos = 0
    while pos < len(body):
        slot_match = _SLOT_RE.match(body, pos)
        if slot_match is None:
            raise MRParseError(f"expected 'slot[value]' at {body[pos:]!r} in {text!r}")
        slot = slot_match.group(1)
        if slot not in SLOTS:
            raise MRParseError(f"unknown slot {slot!r} in {text!r}")
        if any(slot == seen for seen, _ in raw):
            raise MRParseError(f"slot {slot!r} appears twice in {text!r}")
        raw.append((slot, _split_value(slot, slot_match.group(2))))
        pos = slot_match.end()
        if pos < len(body):
            if body[pos] != ",":
                raise MRParseError(f"expected ',' between slots at {body[pos:]!r} in {text!r}")
            pos += 1
            if not body[pos:].strip():
                raise MRParseError(f"trailing ',' in {text!r}")
    if not raw:
        raise MRParseError(f"MR has no slots: {text!r}")
    return MeaningRepresentation(act=act, slots=_canonical_slots(raw))


def try_parse_mr(text: str) -> MeaningRepresentation | None:
    """parse_mr, but None instead of an exception (for model outputs)."""
    try:
        return parse_mr(text)
    except MRParseError:
        return None


def format_mr(mr: MeaningRepresentation) -> str:
    """Canonical string: slots in SLOTS order, list items sorted."""
    slots = _canonical_slots(mr.slots)
    inner = ", ".join(f"{slot}[{', '.join(values)}]" for slot, values in slots)
    return f"{mr.act}({inner})"


# ------------------------------------------------------------------ text matching helpers

_SEP = r"[\s\-/]+"
_OPT_SEP = r"[\s\-/]*"


def _rx(*phrases: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    """Alternation of phrases; a space in a phrase matches any run of space/-/ ."""
    body = "|".join(
        p.replace(" ?", "\0").replace(" ", _SEP).replace("\0", _OPT_SEP) for p in phrases
    )
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", flags)


def _literal_rx(value: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    """Tokens of ``value`` in order, any punctuation (or none) between them."""
    tokens = re.findall(r"[^\W_]+", _fold(value))
    body = r"[\W_]*".join(re.escape(t) for t in tokens)
    return re.compile(rf"(?<!\w){body}(?!\w)", flags)


def _fold(text: str) -> str:
    """Strip accents and unify quotes/dashes, so rules see one spelling."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.translate(str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-"}))


class _Text:
    """A sentence whose matched spans get blanked, so one mention is used only once."""

    def __init__(self, sentence: str) -> None:
        self.text = _fold(sentence)

    def find(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        return list(pattern.finditer(self.text))

    def take(self, pattern: re.Pattern[str]) -> bool:
        matches = self.find(pattern)
        for m in matches:
            self.mask(m.start(), m.end())
        return bool(matches)

    def mask(self, start: int, end: int) -> None:
        self.text = self.text[:start] + " " * (end - start) + self.text[end:]


# ---------------------------------------------------------------------------- lexicons

_GENRES: dict[str, tuple[str, ...]] = {
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

_PLATFORMS: dict[str, tuple[str, ...]] = {
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

_PERSPECTIVES: dict[str, tuple[str, ...]] = {
    "first person": (r"first person", r"1st person"),
    "third person": (r"third person", r"3rd person", r"over the shoulder"),
    "side view": (r"side view", r"side scroll(?:ing|er|ers)?", r"sidescroll(?:ing|er|ers)?",
                  r"side on", r"2D", r"side"),
    "bird view": (r"bird view", r"bird ?'?s ?eye(?: view)?", r"birds eye", r"top down",
                  r"isometric", r"overhead", r"aerial", r"bird", r"birdview"),
}  # fmt: skip

_ESRB: dict[str, tuple[str, ...]] = {
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
_ESRB_STRICT: dict[str, tuple[str, ...]] = {
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

_RATING_LEX: dict[str, tuple[str, ...]] = {
    "excellent": _POSITIVE,
    "good": (*_POSITIVE, r"fine", r"pretty", r"okay", r"all right", r"decent"),
    "average": _NEUTRAL,
    "poor": _NEGATIVE,
}

# Explicit rating claims, used for "wrong" and hallucination (free opinions prove nothing).
_RATING_STRICT: dict[str, tuple[str, ...]] = {
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

_BOOLEAN_KEYWORDS: dict[str, tuple[str, ...]] = {
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
_BOOLEAN_NEGATIVE: dict[str, tuple[str, ...]] = {
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

_NEGATION_CUE = re.compile(
    r"(?<!\w)(?:no|not|non|cannot|without|lacks?|lacking|lack of|neither|nor|never|except|"
    r"excluding|unavailable|unsupported|absence|absent|missing|miss|wish(?:ed)?|if only|"
    r"sadly|none|yet to)(?!\w)|n't",
    re.IGNORECASE,
)
# A negated opinion ("not fond of games on Steam") says nothing about availability.
_OPINION_NEGATION = re.compile(
    r"(?:\bnot|n't|\bnever|\bno)\s+(?:\w+\s+){0,2}?(?:enjoy|like|fond|care|dig|into|interested|"
    r"fan|sold|keen|happy|many|much|great|good|bad|real|fun|worth|impress|too|at all|idea)\w*",
    re.IGNORECASE,
)
# Words skipped when measuring how far a negation cue is from a keyword.
_FILLERS = frozenset({
    "a", "an", "the", "either", "or", "and", "on", "for", "in", "of", "via", "through", "any",
    "release", "releases", "version", "versions", "support", "platform", "platforms", "system",
    "systems", "both", "be", "been", "it", "this", "game",
})  # fmt: skip
_AFTER_NEGATION_CUE = re.compile(
    r"^\W*(?:\w+\W+){0,4}?(?:not|cannot|n't|unavailable|unsupported|absent|missing|lacking|"
    r"dropped|out of luck|\w+n't)(?!\w)",
    re.IGNORECASE,
)
# Clause limits for the negation window before a keyword; "and" starts a new clause when
# a verb or subject follows ("not on Steam and has a Mac release").
_CLAUSE_BREAK = re.compile(
    r"[.;!?()]|(?<!\w)(?:but|however|though|although|while|whereas|whilst|instead)(?!\w)|"
    r",\s*(?=(?:it|you|there|they|and it|and you|and there)\b)|"
    r"(?<!\w)and (?=(?:has|have|is|it|it's|its|there|there's|you|can|was|features?|offers?|"
    r"supports?|comes?|does|runs?|plays?|also)\b)",
    re.IGNORECASE,
)
# ... and after it; "and"/"or" end the window unless another platform keyword follows
# ("Linux and Mac are not supported" negates both, "Steam and is not on Linux" only Linux).
_AFTER_STOP = re.compile(
    r"[.;!?,()]|(?<!\w)(?:but|however|though|while|yet)(?!\w)|"
    r"(?<!\w)(?:and|or)(?!\s+(?:the\s+)?(?:mac|macos|os x|linux|steam|pc|windows|apple)\b)\b",
    re.IGNORECASE,
)
# "everything but Mac and Linux": an exception reads as negation despite the "but".
_EXCEPT_BUT = re.compile(
    r"(?<!\w)(?:everything|anything|all|any|everywhere|each|every \w+) (?:but|except(?: for)?|"
    r"other than|besides)\W+(?:\w+\W+){0,3}$",
    re.IGNORECASE,
)

_CONCEPTS: dict[str, tuple[str, ...]] = {
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

_YEAR_RE = re.compile(r"(?<!\w)(?:19[7-9]\d|20[0-2]\d)(?!\w)")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


def _compile_all(table: dict[str, tuple[str, ...]]) -> dict[str, re.Pattern[str]]:
    return {value: _rx(*phrases) for value, phrases in table.items()}


_GENRE_RX = _compile_all(_GENRES)
_PLATFORM_RX = _compile_all(_PLATFORMS)
_PERSPECTIVE_RX = _compile_all(_PERSPECTIVES)
_ESRB_RX = _compile_all(_ESRB)
_ESRB_STRICT_RX = _compile_all(_ESRB_STRICT)
_RATING_RX = _compile_all(_RATING_LEX)
_RATING_STRICT_RX = _compile_all(_RATING_STRICT)
_BOOL_KEY_RX = _compile_all(_BOOLEAN_KEYWORDS)
_BOOL_NEG_RX = {k: _rx(*v) if v else None for k, v in _BOOLEAN_NEGATIVE.items()}
_CONCEPT_RX = _compile_all(_CONCEPTS)
_NAME_RX = {n: _literal_rx(n, flags=0) for n in GAME_NAMES}

_DEV_SUFFIXES = {
    "corporation", "inc", "ltd", "studios", "studio", "entertainment", "software", "games",
    "digital", "interactive", "team", "international", "online", "north", "ce",
}  # fmt: skip


# Short forms that are ordinary words; "Sports" alone must not stand for Sports Interactive.
_DEV_SHORT_STOP = {
    "sports", "visual", "massive", "evolution", "climax", "core", "ghost", "red", "moon",
    "ivory", "triumph", "upper", "black", "tin", "ninja", "slightly", "crystal", "remedy",
    "fuse", "days", "square", "ea", "the", "spectrum", "electronic", "illusion", "reflections",
}  # fmt: skip


def _developer_rx(value: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    """Full developer name, or it with corporate suffixes dropped ("Valve" for Valve Corp.).

    Shortened forms must keep the original capitalisation and not be a common word.
    """
    tokens = re.findall(r"[^\W_]+", _fold(value))
    full = r"[\W_]*".join(re.escape(t) for t in tokens)
    shorts = []
    while len(tokens) > 1 and tokens[-1].lower() in _DEV_SUFFIXES:
        tokens = tokens[:-1]
        if " ".join(tokens).lower() not in _DEV_SHORT_STOP:
            shorts.append(r"[\W_]*".join(re.escape(t) for t in tokens))
    body = full + "".join(f"|(?-i:{short})" for short in shorts)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", flags)


_DEV_RX = {d: _developer_rx(d, flags=0) for d in DEVELOPERS}


def _name_rx(value: str) -> re.Pattern[str]:
    """Full name, or its main title before ':' (references shorten long titles)."""
    parts = [_literal_rx(value).pattern]
    if ":" in value:
        parts.append(_literal_rx(value.split(":")[0]).pattern)
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)


def _value_rx(slot: str, value: str) -> re.Pattern[str]:
    tables = {
        "genres": _GENRE_RX,
        "platforms": _PLATFORM_RX,
        "player_perspective": _PERSPECTIVE_RX,
        "esrb": _ESRB_RX,
    }
    if slot in tables and value in tables[slot]:
        return tables[slot][value]
    if slot == "name":
        return _name_rx(value)
    if slot == "developer":
        return _developer_rx(value)
    if slot == "specifier":
        return _specifier_rx(value)
    return _literal_rx(value)


def _specifier_rx(value: str) -> re.Pattern[str]:
    # Allow light inflection: "cheap" ~ "cheapest", "addictive" ~ "addicting".
    stem = re.sub(r"(?:est|er|e|y|ive|ing|ed|ly)$", "", _fold(value).lower()) or value
    body = r"[\W_]*".join(re.escape(t) for t in re.findall(r"[^\W_]+", stem))
    return re.compile(rf"(?<!\w){body}\w*", re.IGNORECASE)


def _date_found(text: _Text, value: str) -> bool:
    """exp_release_date: 'June 29, 2018' needs its month and day; a bare year its year."""
    year = re.search(r"\d{4}", value)
    month = next((m for m in _MONTHS if m.lower() in value.lower()), None)
    day = re.search(r"\b(\d{1,2})\b", value)
    if month and day:
        month_rx = rf"(?:{month}|{month[:3]}\.?)"
        d = day.group(1)
        pat = re.compile(
            rf"{month_rx}\s+{d}(?:st|nd|rd|th)?\b|\b{d}(?:st|nd|rd|th)?\s+(?:of\s+)?{month_rx}",
            re.IGNORECASE,
        )
        found = text.take(pat)
        if found and year:
            text.take(re.compile(rf"\b{year.group(0)}\b"))
        return found
    if year:
        return text.take(re.compile(rf"(?<!\w){year.group(0)}(?!\w)"))
    return text.take(_literal_rx(value))


# ------------------------------------------------------------------------------- SER


@dataclass(frozen=True)
class SlotErrorCounts:
    """Slot units of an MR and the errors found for them in one sentence."""

    total: int
    missing: int = 0
    wrong: int = 0
    hallucinated: int = 0

    @property
    def errors(self) -> int:
        return self.missing + self.wrong + self.hallucinated

    @property
    def ser(self) -> float:
        if self.total == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.total

    def __add__(self, other: SlotErrorCounts) -> SlotErrorCounts:
        return SlotErrorCounts(
            self.total + other.total,
            self.missing + other.missing,
            self.wrong + other.wrong,
            self.hallucinated + other.hallucinated,
        )


def _strict_genre_rx() -> dict[str, re.Pattern[str]]:
    # Drop the loose forms ("race", "sim", "real time", ...) that occur in plain prose.
    loose = {"race", "races", "drive", r"sims?", r"real time", r"shoot", r"simulate[sd]?",
             r"vehicular", r"text based", r"action packed", r"independent(?:ly)?", r"FPS",
             r"simula\w*", r"fight(?:s)?"}  # fmt: skip
    return {g: _rx(*(p for p in phrases if p not in loose)) for g, phrases in _GENRES.items()}


def _strict_perspective_rx() -> dict[str, re.Pattern[str]]:
    loose = {r"side", r"bird", r"2D", r"overhead", r"aerial", r"side on"}
    return {p: _rx(*(x for x in phrases if x not in loose)) for p, phrases in _PERSPECTIVES.items()}


# Words inside a compound genre that must not count as extra genres once it is realised.
_GENRE_PARTS: dict[str, tuple[str, ...]] = {
    "action-adventure": ("action", "adventure"),
    "real-time strategy": ("strategy",),
    "turn-based strategy": ("strategy",),
    "text adventure": ("adventure",),
    "MMORPG": ("role-playing",),
    "trivia/board game": ("trivia/board game",),
    "driving/racing": ("driving/racing",),
}

# Boolean keywords that count as hallucinated when their slot is not in the MR. Multiplayer
# is narrowed to the word itself: "with friends", "online" are too common in plain prose.
_BOOL_HALLUCINATION_RX: dict[str, re.Pattern[str]] = {
    "has_multiplayer": _rx(r"multi ?player", r"single ?player"),
    "available_on_steam": _rx(r"Steam"),
    "has_linux_release": _rx(r"Linux"),
    "has_mac_release": _rx(r"Mac", r"Mac ?OS", r"OS ?X"),
}

_STRICT_GENRE_RX = _strict_genre_rx()
_STRICT_PERSPECTIVE_RX = _strict_perspective_rx()


class _Vocab:
    """The rival values of one slot, with a cheap substring pre-check before each regex."""

    def __init__(self, patterns: dict[str, re.Pattern[str]], literal: bool = False) -> None:
        # Longest values first, so "Half-Life 2" is consumed before a shorter name.
        self.items = [
            (value, rx, _needle(value) if literal else "")
            for value, rx in sorted(patterns.items(), key=lambda kv: -len(kv[0]))
        ]

    def take(self, text: _Text, exclude: Iterable[str] = ()) -> set[str]:
        """Values mentioned in ``text`` (minus ``exclude``); their mentions get masked."""
        skip = set(exclude)
        lowered = text.text.lower()
        found: set[str] = set()
        for value, rx, needle in self.items:
            if value not in skip and needle in lowered and text.take(rx):
                found.add(value)
        return found


def _needle(value: str) -> str:
    """First token of a name: every accepted form of it (short forms too) starts with it."""
    tokens = re.findall(r"[^\W_]+", _fold(value).lower())
    return tokens[0] if tokens else ""


_RIVALS: dict[str, _Vocab] = {
    "name": _Vocab(_NAME_RX, literal=True),
    "developer": _Vocab(_DEV_RX, literal=True),
    "genres": _Vocab(_STRICT_GENRE_RX),
    "platforms": _Vocab(_PLATFORM_RX),
    "player_perspective": _Vocab(_STRICT_PERSPECTIVE_RX),
    "esrb": _Vocab(_ESRB_STRICT_RX),
}

# Slots are checked in this order: developers and names first, so the words inside them
# ("Little Big *Adventure*", "*Nintendo* EAD") are masked before genres/platforms look;
# developers before names because "SUPERHOT Team" contains the game name "Superhot".
_CHECK_ORDER: tuple[str, ...] = (
    "developer", "name", "exp_release_date", "release_year", "esrb", "player_perspective",
    "genres", "platforms", "has_multiplayer", "available_on_steam", "has_linux_release",
    "has_mac_release", "specifier", "rating",
)  # fmt: skip


def _polarity_mentions(text: _Text, slot: str) -> tuple[int, int]:
    """Count (positive, negative) mentions of a boolean slot, masking them."""
    pos = neg = 0
    neg_rx = _BOOL_NEG_RX[slot]
    if neg_rx is not None:
        neg += len(text.find(neg_rx))
        text.take(neg_rx)
    for m in text.find(_BOOL_KEY_RX[slot]):
        if _is_negated(text.text, m.start(), m.end()):
            neg += 1
        else:
            pos += 1
        text.mask(m.start(), m.end())
    return pos, neg


def _is_negated(sentence: str, start: int, end: int) -> bool:
    """Clause-local negation: a cue a few words before the keyword, or just after it."""
    before = sentence[:start]
    if _EXCEPT_BUT.search(before):
        return True
    breaks = list(_CLAUSE_BREAK.finditer(before))
    clause = before[breaks[-1].end() :] if breaks else before
    clause = _OPINION_NEGATION.sub(" ", clause)
    words = [w for w in re.findall(r"[\w']+", clause) if w.lower() not in _FILLERS]
    if _NEGATION_CUE.search(" ".join(words[-5:])):
        return True
    after = sentence[end:]
    stop = _AFTER_STOP.search(after)
    after = after[: stop.start()] if stop else after
    return bool(_AFTER_NEGATION_CUE.search(after))


_BOTH_PERSPECTIVES = (
    r"(?:first|third)[\s,-]+(?:and|or|to|&)\s+(?:the\s+)?(?:first|third)[\s-]+person"
)
# Forms that realise a value without being used up by it: "FPS" is both first person and
# shooter; "first and third person" realises both perspectives.
_SHARED_FORMS: dict[tuple[str, str], re.Pattern[str]] = {
    ("player_perspective", "first person"): _rx(r"FPS", _BOTH_PERSPECTIVES),
    ("player_perspective", "third person"): _rx(_BOTH_PERSPECTIVES),
}


def _match_categorical(text: _Text, slot: str, values: tuple[str, ...]) -> tuple[int, int, int]:
    """(missing, wrong, hallucinated) for a slot with a closed vocabulary of rival values."""
    unmatched = 0
    # Longest values first so "real-time strategy" is consumed before "strategy".
    for value in sorted(values, key=len, reverse=True):
        shared = _SHARED_FORMS.get((slot, value))
        if not text.take(_value_rx(slot, value)) and not (shared and text.find(shared)):
            unmatched += 1
    if slot == "genres":
        # Parts of a realised compound genre are not extra genres ("turn-based RPG strategy").
        for value in values:
            for part in _GENRE_PARTS.get(value, ()):
                text.take(_GENRE_RX[part])
    foreign = _count_rivals(text, slot, exclude=set(values))
    wrong = min(unmatched, foreign)
    return unmatched - wrong, wrong, foreign - wrong


def _count_rivals(text: _Text, slot: str, exclude: set[str]) -> int:
    return len(_RIVALS[slot].take(text, exclude))


def _check_empty(text: _Text, slot: str) -> bool:
    """request_attribute slot: the attribute itself or any of its values is mentioned."""
    found = False
    if slot in _CONCEPT_RX:
        found |= text.take(_CONCEPT_RX[slot])
    if slot in _BOOL_KEY_RX:
        found |= text.take(_BOOL_KEY_RX[slot])
    if slot in _RIVALS:
        found |= bool(_RIVALS[slot].take(text))
    if slot == "release_year":
        found |= text.take(_YEAR_RE)
    return found


def _check_boolean(text: _Text, slot: str, value: str) -> tuple[int, int]:
    """(missing, wrong) for a yes/no slot: any mention of the asked polarity satisfies it."""
    pos, neg = _polarity_mentions(text, slot)
    good, bad = (pos, neg) if value.lower() in {"yes", "true"} else (neg, pos)
    if good:
        return 0, 0
    return (0, 1) if bad else (1, 0)


def _check_rating(text: _Text, value: str) -> tuple[int, int]:
    """(missing, wrong): lenient lexicon first; only explicit rival ratings make it wrong."""
    for rx in (_RATING_STRICT_RX.get(value), _RATING_RX.get(value), _literal_rx(value)):
        if rx is not None and text.take(rx):
            return 0, 0
    for other, rx in _RATING_STRICT_RX.items():
        if other != value and text.take(rx):
            return 0, 1
    return 1, 0


def _check_year(text: _Text, value: str) -> tuple[int, int]:
    own = re.compile(rf"(?<!\w)(?:{re.escape(value)}|'{re.escape(value[-2:])})(?!\w)")
    if text.take(own):
        return 0, 0
    return (0, 1) if text.take(_YEAR_RE) else (1, 0)


def _check_slot(text: _Text, slot: str, values: tuple[str, ...]) -> tuple[int, int, int]:
    """(missing, wrong, hallucinated) for one MR slot; masks what it uses."""
    if not values:
        return int(not _check_empty(text, slot)), 0, 0
    if slot in _RIVALS:
        return _match_categorical(text, slot, values)
    if slot in BOOLEAN_SLOTS:
        return (*_check_boolean(text, slot, values[0]), 0)
    if slot == "rating":
        return (*_check_rating(text, values[0]), 0)
    if slot == "release_year":
        return (*_check_year(text, values[0]), 0)
    if slot == "exp_release_date":
        return int(not _date_found(text, values[0])), 0, 0
    return int(not text.take(_specifier_rx(values[0]))), 0, 0


def _hallucinations(text: _Text, present: set[str]) -> list[str]:
    """Closed-vocabulary values left in the masked sentence, one entry per distinct value."""
    found: list[str] = []
    for slot in ("name", "developer", "esrb", "player_perspective", "genres", "platforms"):
        found += [f"{slot}={value}" for value in sorted(_RIVALS[slot].take(text))]
    found += sorted({f"year={m.group(0)}" for m in text.find(_YEAR_RE)})
    if "rating" not in present:
        found += [f"rating={v}" for v, rx in _RATING_STRICT_RX.items() if text.take(rx)]
    for slot in sorted(BOOLEAN_SLOTS - present):
        if text.take(_BOOL_HALLUCINATION_RX[slot]):
            found.append(slot)
    return found


def slot_report(
    mr: MeaningRepresentation | str, sentence: str
) -> tuple[dict[str, tuple[int, int, int]], list[str]]:
    """Per-slot (missing, wrong, hallucinated) and the hallucinated values, for debugging."""
    if isinstance(mr, str):
        mr = parse_mr(mr)
    text = _Text(sentence)
    slots = dict(mr.slots)
    per_slot = {s: _check_slot(text, s, slots[s]) for s in _CHECK_ORDER if s in slots}
    return per_slot, _hallucinations(text, set(slots))


def slot_errors(mr: MeaningRepresentation | str, sentence: str) -> SlotErrorCounts:
    """Count missing / wrong / hallucinated slot units of ``mr`` in ``sentence``.

    See the module docstring for the rules; ``mr`` may also be given as a string.
    """
    if isinstance(mr, str):
        mr = parse_mr(mr)
    per_slot, extra = slot_report(mr, sentence)
    total = sum(max(1, len(values)) for _, values in mr.slots)
    return SlotErrorCounts(
        total=total,
        missing=sum(m for m, _, _ in per_slot.values()),
        wrong=sum(w for _, w, _ in per_slot.values()),
        hallucinated=sum(h for _, _, h in per_slot.values()) + len(extra),
    )
