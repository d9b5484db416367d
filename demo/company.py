"""A fictional company for `custody demo` and for tests that need a whole company.

It is written the way IT hands mail over (one Maildir per rep, vCard exports of company and
personal address books) together with the config and policy describing it, and its mix is
chosen so every coverage class and every kind of noise shows up. Everything derives from one
seeded generator and a reference date, so a seed always yields the same messages; only the
Maildir file names, unique per delivery by the Maildir convention, differ between runs.
"""

from __future__ import annotations

import json
import mailbox
import random
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from email.charset import Charset
from email.header import Header
from email.message import Message
from email.parser import Parser
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Literal

import vobject
import yaml

COMPANY_DOMAIN = "northwind-demo.example"
LOOKBACK_DAYS = 120
DORMANT_AFTER_DAYS = 270
HISTORY_DAYS = 365
RECENT_DAYS = 90
ARCHIVE_AFTER_DAYS = 180

CoverageClass = Literal["covered", "single-threaded", "personal-channel-only", "dormant", "contested"]
MailKind = Literal["human", "internal", "noise", "malformed"]

# (class, organisations, free-mail persons): 300 customers in all.
CLASS_SIZES: tuple[tuple[CoverageClass, int, int], ...] = (
    ("covered", 90, 5),
    ("single-threaded", 90, 15),
    ("contested", 15, 0),
    ("dormant", 40, 5),
    ("personal-channel-only", 35, 5),
)
PHONE_ONLY_PERSONS = 2


@dataclass(frozen=True)
class DemoRep:
    local: str
    name: str
    team: str
    manager: str
    locale: str
    utc_offset: int
    weight: int
    personal_addresses: tuple[str, ...] = ()
    keeps_phone_book: bool = False
    archives_old_mail: bool = False

    @property
    def email(self) -> str:
        return f"{self.local}@{COMPANY_DOMAIN}"

    @property
    def party(self) -> Party:
        return Party(self.name, self.email, self.name.split()[0], "utf-8", self.utc_offset,
                     f"mail.{COMPANY_DOMAIN}", self.locale)


REPS: tuple[DemoRep, ...] = (
    DemoRep("anna.keller", "Anna Keller", "EMEA", "", "de", 1, 1, archives_old_mail=True),
    DemoRep("lukas.meyer", "Lukas Meyer", "EMEA", "anna.keller", "de", 1, 3,
            personal_addresses=("lmeyer.home@gmail.com",), keeps_phone_book=True),
    DemoRep("sophie.martin", "Sophie Martin", "EMEA", "anna.keller", "fr", 1, 3, keeps_phone_book=True),
    DemoRep("chen.jing", "Chen Jing", "APAC", "", "zh", 8, 1, archives_old_mail=True),
    DemoRep("wang.lei", "Wang Lei", "APAC", "chen.jing", "zh", 8, 3, keeps_phone_book=True),
    DemoRep("priya.nair", "Priya Nair", "APAC", "chen.jing", "en", 8, 3),
)
FORWARDING_REP = REPS[1]
TEAM_LOCALES = {"EMEA": ("en", "de", "fr", "es"), "APAC": ("en", "zh", "ja")}
LOCALE_WEIGHTS = {"en": 35, "de": 20, "fr": 12, "zh": 18, "ja": 8, "es": 7}
LOCALE_OFFSETS = {"en": 0, "de": 1, "fr": 1, "es": 1, "zh": 8, "ja": 9}
LOCALE_CHARSETS = {"en": "utf-8", "de": "iso-8859-1", "fr": "utf-8", "es": "iso-8859-1",
                   "zh": "gbk", "ja": "iso-2022-jp"}
FREEMAIL_BY_LOCALE = {"zh": ("qq.com", "163.com"), "ja": ("gmail.com", "outlook.com")}
DEFAULT_FREEMAIL = ("gmail.com", "outlook.com")

GIVEN_NAMES = {
    "en": ("James", "Emily", "Michael", "Sarah", "David", "Laura", "Robert", "Olivia", "Daniel", "Grace"),
    "de": ("Jürgen", "Katrin", "Matthias", "Sabine", "Stefan", "Ulrike", "Tobias", "Anke", "Florian", "Birgit"),
    "fr": ("Amélie", "François", "Hélène", "Jérôme", "Céline", "Loïc", "Margaux", "Benoît", "Élodie", "Théo"),
    "es": ("Alejandro", "María", "Javier", "Lucía", "Andrés", "Carmen", "Sofía", "Diego"),
    "zh": (("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("磊", "lei"),
           ("洋", "yang"), ("艳", "yan"), ("勇", "yong"), ("军", "jun"), ("杰", "jie"), ("婷", "ting")),
    "ja": (("健太", "kenta"), ("美咲", "misaki"), ("翔", "sho"), ("陽子", "yoko"), ("大輔", "daisuke"),
           ("由美", "yumi")),
}
FAMILY_NAMES = {
    "en": ("Carter", "Bennett", "Hughes", "Foster", "Reed", "Palmer", "Walsh", "Brooks", "Morgan", "Hayes"),
    "de": ("Müller", "Schröder", "Weiß", "Hoffmann", "Krüger", "Becker", "Schäfer", "Köhler", "Wagner"),
    "fr": ("Lefèvre", "Dubois", "Girard", "Rousseau", "Moreau", "Fontaine", "Chevalier", "Bérard", "Perrin"),
    "es": ("García", "Martínez", "López", "Sánchez", "Pérez", "Gómez", "Fernández", "Núñez"),
    "zh": (("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
           ("赵", "zhao"), ("黄", "huang"), ("周", "zhou"), ("吴", "wu")),
    "ja": (("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"),
           ("渡辺", "watanabe"), ("伊藤", "ito"), ("山本", "yamamoto"), ("中村", "nakamura")),
}
ORG_PREFIXES = (
    "acme", "blue-harbor", "cedar-ridge", "copperleaf", "delta-works", "evergreen", "falcon", "granite",
    "harbor-light", "ironwood", "jade-river", "juniper", "kestrel", "lakeside", "lumen", "maple-leaf",
    "meridian", "nordlicht", "oakridge", "orion", "pinecrest", "quarry", "redwood", "riverbend", "saffron",
    "silverline", "summit", "tidewater", "ursa", "vantage", "willow", "zephyr", "alpenblick", "rheintal",
    "lotus", "hanami", "bambus", "sakura", "fleur", "sierra",
)
ORG_TRADES = (
    "tools", "logistics", "foods", "systems", "textiles", "medical", "energy", "retail", "robotics",
    "packaging", "optics", "chemicals", "furniture", "print", "marine",
)
SERIES = ("Atlas", "Hydra", "Orion", "Vega", "Nova", "Titan", "Kite", "Delta")
SUBJECTS = {
    "en": ("Quote request: {product}", "Order {n} - delivery date", "Follow-up on our call",
           "Invoice {n}", "Samples of {product}", "Meeting next week?"),
    "de": ("Angebot für {product}", "Bestellung {n} - Liefertermin", "Rückfrage zu Rechnung {n}",
           "Termin nächste Woche", "Muster für {product}"),
    "fr": ("Demande de devis : {product}", "Commande {n} – délai de livraison", "Réunion la semaine prochaine",
           "Facture {n} – précision", "Échantillons {product}"),
    "es": ("Solicitud de cotización: {product}", "Pedido {n} - fecha de entrega", "Reunión la próxima semana",
           "Factura {n}"),
    "zh": ("报价请求：{product}", "订单 {n} 交货日期", "关于发票 {n} 的问题", "下周会议安排", "{product} 样品"),
    "ja": ("{product} のお見積りについて", "注文番号 {n} の納期", "請求書 {n} について", "来週のお打ち合わせ"),
}
BODY_LINES = {
    "en": ("Thanks for getting back to me.", "Could you confirm the quantities and the delivery address?",
           "Please find our updated offer attached.", "Shall we go through the details on a short call?"),
    "de": ("Vielen Dank für Ihre Rückmeldung.", "Könnten Sie bitte Menge und Lieferadresse bestätigen?",
           "Anbei unser aktualisiertes Angebot.", "Sollen wir die Details kurz telefonisch besprechen?"),
    "fr": ("Merci pour votre retour.", "Pourriez-vous confirmer les quantités et l'adresse de livraison ?",
           "Veuillez trouver ci-joint notre offre mise à jour.", "Pouvons-nous en parler lors d'un court appel ?"),
    "es": ("Gracias por su respuesta.", "¿Podría confirmar las cantidades y la dirección de entrega?",
           "Adjuntamos nuestra oferta actualizada.", "¿Podemos comentar los detalles en una breve llamada?"),
    "zh": ("感谢您的回复。", "请确认数量和收货地址。", "附件是我们更新后的报价。", "我们可以电话沟通一下细节。"),
    "ja": ("ご連絡ありがとうございます。", "数量と納品先をご確認いただけますでしょうか。",
           "更新したお見積りを添付いたします。", "詳細はお電話でご相談させてください。"),
}
GREETINGS = {"en": "Hi {name},", "de": "Hallo {name},", "fr": "Bonjour {name},", "es": "Hola {name}:",
             "zh": "{name}，您好！", "ja": "{name}様"}
CLOSINGS = {"en": "Best regards", "de": "Viele Grüße", "fr": "Cordialement", "es": "Un saludo",
            "zh": "此致敬礼", "ja": "よろしくお願いいたします。"}
REPLY_PREFIXES = {"en": "Re: ", "de": "AW: ", "fr": "RE : ", "es": "RE: ", "zh": "回复："}
FORWARD_PREFIXES = {"en": "Fwd: ", "de": "WG: ", "fr": "TR : "}
AUTO_REPLY_PREFIXES = {"en": "Automatic reply: ", "de": "Abwesenheitsnotiz: ", "fr": "Réponse automatique : ",
                       "es": "Respuesta automática: ", "zh": "自动回复：", "ja": "自動応答："}
NEWSLETTERS = (
    # (display name, sender, subject, list id or "", precedence or "", one copy per subscriber)
    ("Industry Weekly", "newsletter@industry-weekly.example", "Industry Weekly #{n}",
     "<weekly.industry-weekly.example>", "bulk", True),
    ("Logistik Heute", "redaktion@logistik-heute.example", "Logistik Heute – Ausgabe {n}",
     "<leser.logistik-heute.example>", "", False),
    ("Trade Fair News", "events@tradefair-news.example", "Trade fair highlights {n}", "", "bulk", True),
)


@dataclass(frozen=True)
class Party:
    """Someone who writes mail: what their client puts in headers."""

    name: str
    email: str
    greeting_name: str
    charset: str
    utc_offset: int
    host: str
    locale: str


@dataclass(frozen=True)
class DemoContact:
    party: Party
    given: str
    family: str
    mobile: str


@dataclass
class DemoCustomer:
    key: str
    kind: Literal["organisation", "person"]
    name: str
    locale: str
    coverage: CoverageClass
    contacts: list[DemoContact]
    office_phone: str = ""
    reps: list[DemoRep] = field(default_factory=list)


@dataclass(frozen=True)
class Mail:
    """One message and the rep folders it lands in; malformed files are kept as their raw bytes."""

    date: datetime
    content: Message | bytes
    deliveries: tuple[tuple[str, str], ...]
    kind: MailKind
    subject: str = ""


@dataclass(frozen=True)
class DemoCompany:
    """What was generated; `coverage` is the class each customer key was built to show."""

    root: Path
    config_path: Path
    policy_path: Path
    reference: datetime
    seed: int
    reps: tuple[str, ...]
    forwarding_rep: str
    coverage: dict[str, CoverageClass]
    kinds: dict[str, str]
    messages: int
    mail_files: int
    noise_messages: int
    malformed_messages: int
    address_book_entries: int
    sources: tuple[str, ...]


def generate_demo(root: Path, seed: int = 7, today: date | None = None) -> DemoCompany:
    """Write the company under `root`: custody.toml, policy.yaml, mail/<rep>/ and contacts/*.vcf.

    `today` fixes the reference date all mail is placed before; tests pass one so the same
    seed gives the same company on any day.
    """
    rng = random.Random(seed)
    reference = datetime.combine(today or datetime.now(timezone.utc).date(), time(0), tzinfo=timezone.utc)
    customers = _customers(rng)
    room = Mailroom(rng, reference)
    for customer in customers:
        room.customer_mail(customer)
    room.newsletters()
    room.no_reply_notices(customers)
    room.pipeline_reviews()
    room.bounce(customers)
    room.forwards(FORWARDING_REP)
    room.malformed()
    root.mkdir(parents=True, exist_ok=True)
    mail_files = write_maildirs(root / "mail", room.mails)
    books = write_address_books(root / "contacts", customers, rng)
    sources = write_config(root, books)
    return DemoCompany(
        root=root,
        config_path=root / "custody.toml",
        policy_path=root / "policy.yaml",
        reference=reference,
        seed=seed,
        reps=tuple(rep.email for rep in REPS),
        forwarding_rep=FORWARDING_REP.email,
        coverage={c.key: c.coverage for c in customers},
        kinds={c.key: c.kind for c in customers},
        messages=len(room.mails),
        mail_files=mail_files,
        noise_messages=sum(m.kind == "noise" for m in room.mails),
        malformed_messages=sum(m.kind == "malformed" for m in room.mails),
        address_book_entries=sum(len(entries) for entries in books.values()),
        sources=sources,
    )


def _customers(rng: random.Random) -> list[DemoCustomer]:
    people = PeopleMaker(rng)
    organisations = sum(orgs for _, orgs, _ in CLASS_SIZES)
    domains = rng.sample([f"{p}-{t}.example" for p in ORG_PREFIXES for t in ORG_TRADES], organisations)
    customers: list[DemoCustomer] = []
    for coverage, orgs, persons in CLASS_SIZES:
        for _ in range(orgs):
            locale = "en" if coverage == "contested" else people.locale()
            customers.append(people.organisation(domains.pop(), locale, coverage))
        for index in range(persons):
            phone_only = coverage == "personal-channel-only" and index < PHONE_ONLY_PERSONS
            customers.append(people.person(people.locale(), coverage, phone_only))
    for customer in customers:
        customer.reps = _assign_reps(rng, customer)
    return customers


class PeopleMaker:
    """Fictional names, addresses and phone numbers, unique across the company."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()
        self.mobiles = [f"+447700900{n:03d}" for n in range(1000)]
        self.offices = [f"+442079460{n:03d}" for n in range(1000)]
        rng.shuffle(self.mobiles)
        rng.shuffle(self.offices)

    def locale(self) -> str:
        return self.rng.choices(list(LOCALE_WEIGHTS), weights=list(LOCALE_WEIGHTS.values()))[0]

    def organisation(self, domain: str, locale: str, coverage: CoverageClass) -> DemoCustomer:
        name = " ".join(word.capitalize() for word in domain.removesuffix(".example").split("-"))
        contacts = [self.contact(locale, domain, f"mail.{domain}") for _ in range(self.rng.choice((1, 1, 2, 2, 3)))]
        return DemoCustomer(domain, "organisation", name, locale, coverage, contacts, self.offices.pop())

    def person(self, locale: str, coverage: CoverageClass, phone_only: bool) -> DemoCustomer:
        domain = self.rng.choice(FREEMAIL_BY_LOCALE.get(locale, DEFAULT_FREEMAIL))
        contact = self.contact(locale, domain, domain, freemail=True, phone_only=phone_only)
        key = f"tel:{contact.mobile}" if phone_only else contact.party.email
        return DemoCustomer(key, "person", contact.party.name, locale, coverage, [contact])

    def contact(self, locale: str, domain: str, host: str, freemail: bool = False, phone_only: bool = False) -> DemoContact:
        given, given_latin = _name_part(self.rng.choice(GIVEN_NAMES[locale]))
        family, family_latin = _name_part(self.rng.choice(FAMILY_NAMES[locale]))
        local = self._local_part(domain, given_latin, family_latin, freemail)
        email = "" if phone_only else self._unique(f"{local}@{domain}")
        eastern = locale in ("zh", "ja")
        name = f"{family}{given}" if locale == "zh" else f"{family} {given}" if eastern else f"{given} {family}"
        greeting = {"zh": name, "ja": family}.get(locale, given)
        charset = LOCALE_CHARSETS[locale] if self.rng.random() < 0.6 else "utf-8"
        party = Party(name, email, greeting, charset, LOCALE_OFFSETS[locale], host, locale)
        return DemoContact(party, given, family, self.mobiles.pop())

    def _local_part(self, domain: str, given: str, family: str, freemail: bool) -> str:
        if domain == "qq.com":
            return str(self.rng.randint(10_000_000, 3_999_999_999))
        if freemail:
            return f"{given}{family}{self.rng.randint(60, 99)}"
        return self.rng.choices((f"{given}.{family}", f"{given[0]}{family}"), weights=(2, 1))[0]

    def _unique(self, email: str) -> str:
        local, _, domain = email.partition("@")
        candidate, number = email, 1
        while candidate in self.taken:
            number += 1
            candidate = f"{local}{number}@{domain}"
        self.taken.add(candidate)
        return candidate


def _name_part(entry: str | tuple[str, str]) -> tuple[str, str]:
    """(as written, ASCII for the address): Latin names are folded, CJK names carry a romanisation."""
    if isinstance(entry, tuple):
        return entry
    folded = unicodedata.normalize("NFKD", entry.replace("ß", "ss"))
    return entry, "".join(ch for ch in folded if ch.isascii() and ch.isalpha()).lower()


def _assign_reps(rng: random.Random, customer: DemoCustomer) -> list[DemoRep]:
    """The reps who work the customer, primary first, as its coverage class needs."""
    if customer.coverage == "contested":
        rivals = [_pick(rng, _team("EMEA")), _pick(rng, _team("APAC"))]
        if rng.random() < 0.3:
            rivals.append(_pick(rng, [r for r in REPS if r not in rivals]))
        return rivals
    teams = [team for team, locales in TEAM_LOCALES.items() if customer.locale in locales]
    members = _team(rng.choice(teams))
    if customer.coverage == "personal-channel-only":
        keepers = [r for r in REPS if r.keeps_phone_book and r.team in teams]
        return [_pick(rng, keepers)]
    primary = _pick(rng, members)
    if customer.coverage == "covered" or (customer.coverage == "dormant" and rng.random() < 0.3):
        return [primary, rng.choice([r for r in members if r != primary])]
    return [primary]


def _team(name: str) -> list[DemoRep]:
    return [rep for rep in REPS if rep.team == name]


def _pick(rng: random.Random, reps: list[DemoRep]) -> DemoRep:
    return rng.choices(reps, weights=[r.weight for r in reps])[0]


class Mailroom:
    """Every message of the company, as each sender's client writes it, with the rep folders it lands in."""

    def __init__(self, rng: random.Random, reference: datetime) -> None:
        self.rng = rng
        self.reference = reference
        self.mails: list[Mail] = []
        self.received: dict[str, list[tuple[Mail, Party]]] = {rep.local: [] for rep in REPS}

    def customer_mail(self, customer: DemoCustomer) -> None:
        if customer.coverage == "personal-channel-only":
            return
        if customer.coverage == "dormant":
            for rep in customer.reps:
                for _ in range(self.rng.randint(1, 3)):
                    self.thread(customer, rep, self.day(HISTORY_DAYS, DORMANT_AFTER_DAYS + 30))
            return
        primary, *others = customer.reps
        colleague = others[0] if customer.coverage == "covered" else None
        threads = self.rng.randint(2, 4) if customer.coverage != "contested" else 2
        for rep in customer.reps:
            self.thread(customer, rep, self.day(RECENT_DAYS, 20))
            for _ in range(threads - 1 if rep == primary else self.rng.randint(0, 1)):
                cc = colleague if rep == primary and self.rng.random() < 0.4 else None
                self.thread(customer, rep, self.day(HISTORY_DAYS, 20), cc)

    def day(self, oldest: int, newest: int) -> datetime:
        """A working-day morning or afternoon between `oldest` and `newest` days before the reference."""
        moment = self.reference - timedelta(days=self.rng.randint(newest, oldest))
        if moment.weekday() >= 5:
            moment -= timedelta(days=moment.weekday() - 4)
        return moment + timedelta(minutes=self.rng.randint(7 * 60, 16 * 60))

    def thread(self, customer: DemoCustomer, rep: DemoRep, start: datetime, cc_rep: DemoRep | None = None) -> None:
        contact = self.rng.choice(customer.contacts)
        others = [c.party for c in customer.contacts if c is not contact and self.rng.random() < 0.2]
        locale = customer.locale
        subject = self.rng.choice(SUBJECTS[locale]).format(
            product=f"NW-{self.rng.randint(100, 999)} {self.rng.choice(SERIES)}", n=self.rng.randint(40_000, 99_999))
        rep_turn = self.rng.random() < 0.55
        parent: tuple[str, str] = ("", "")
        moment = start
        for turn in range(self.rng.choice((1, 2, 2, 3, 3, 4, 5))):
            if moment >= self.reference - timedelta(hours=1):
                return
            writer = rep.party if rep_turn else contact.party
            title = subject if turn == 0 else _prefixed(REPLY_PREFIXES, writer.locale, subject)
            if rep_turn:
                _, message_id = self.from_rep(rep, contact.party, others, cc_rep, title, moment, parent, locale)
                if self.rng.random() < 0.03:
                    self.auto_reply(contact.party, rep, title, moment, message_id)
            else:
                _, message_id = self.from_customer(contact.party, rep, others, cc_rep, title, moment, parent, locale)
            parent = (message_id, " ".join(filter(None, (parent[1], message_id))))
            rep_turn = not rep_turn
            moment += timedelta(minutes=self.rng.randint(45, 72 * 60))

    def from_rep(
        self, rep: DemoRep, to: Party, cc: list[Party], cc_rep: DemoRep | None, subject: str,
        moment: datetime, parent: tuple[str, str], locale: str,
    ) -> tuple[Mail, str]:
        copies = [cc_rep.party] if cc_rep else []
        message_id = self.message_id(rep.party.host)
        message = render(rep.party, [to], cc + copies, subject, moment, message_id, parent,
                     _body(self.rng, locale, to.greeting_name, rep.name))
        deliveries = [(rep.local, "Sent")] + ([(cc_rep.local, self.inbox(cc_rep, moment))] if cc_rep else [])
        return self.post(Mail(moment, message, tuple(deliveries), "human", subject)), message_id

    def from_customer(
        self, sender: Party, rep: DemoRep, cc: list[Party], cc_rep: DemoRep | None, subject: str,
        moment: datetime, parent: tuple[str, str], locale: str,
    ) -> tuple[Mail, str]:
        reps = [rep] + ([cc_rep] if cc_rep else [])
        message_id = "" if self.rng.random() < 0.004 else self.message_id(sender.host)
        message = render(sender, [rep.party], cc + [r.party for r in reps[1:]], subject, moment, message_id, parent,
                     _body(self.rng, locale, rep.party.greeting_name, sender.name))
        mail = self.post(Mail(moment, message, tuple((r.local, self.inbox(r, moment)) for r in reps), "human", subject))
        self.received[rep.local].append((mail, sender))
        return mail, message_id

    def auto_reply(self, sender: Party, rep: DemoRep, subject: str, moment: datetime, in_reply_to: str) -> None:
        title = _prefixed(AUTO_REPLY_PREFIXES, sender.locale, subject)
        moment += timedelta(minutes=1)
        message = render(sender, [rep.party], [], title, moment, self.message_id(sender.host), (in_reply_to, in_reply_to),
                     _body(self.rng, sender.locale, rep.party.greeting_name, sender.name),
                     [("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")])
        self.post(Mail(moment, message, ((rep.local, self.inbox(rep, moment)),), "noise", title))

    def newsletters(self) -> None:
        """Every rep reads one or two; list mail shares one Message-ID across all its readers."""
        readers = {rep.local: self.rng.sample(range(len(NEWSLETTERS)), self.rng.randint(1, 2)) for rep in REPS}
        for index, (name, address, subject, list_id, precedence, personal) in enumerate(NEWSLETTERS):
            subscribers = [rep for rep in REPS if index in readers[rep.local]]
            sender = Party(name, address, "", "utf-8", 0, address.partition("@")[2], "en")
            extra = [(k, v) for k, v in (("List-Id", list_id), ("Precedence", precedence)) if v]
            extra.append(("List-Unsubscribe", f"<mailto:unsubscribe@{sender.host}>"))
            for issue, moment in enumerate(self.every(14), start=1):
                title = subject.format(n=issue)
                body = f"{title}\n\nThis issue: market news, trade fairs and product launches.\n"
                groups = [[rep] for rep in subscribers] if personal else [subscribers]
                for group in groups:
                    to = [group[0].party] if personal else [Party("", f"members@{sender.host}", "", "", 0, "", "en")]
                    message = render(sender, to, [], title, moment, self.message_id(sender.host), ("", ""), body, extra)
                    self.post(Mail(moment, message, tuple((r.local, self.inbox(r, moment)) for r in group), "noise", title))

    def every(self, days: int) -> list[datetime]:
        first = self.reference - timedelta(days=HISTORY_DAYS - self.rng.randint(0, days - 1))
        return [first + timedelta(days=days * n, hours=6) for n in range(HISTORY_DAYS // days)]

    def no_reply_notices(self, customers: list[DemoCustomer]) -> None:
        """Shipping notices from a carrier and invoice-portal mail from customers' own no-reply senders."""
        carrier = Party("Parcel Tracker", "noreply@parcel-tracker.example", "", "utf-8", 0, "parcel-tracker.example", "en")
        portals = [c for c in customers if c.kind == "organisation" and c.coverage in ("covered", "single-threaded")]
        for rep in REPS:
            for _ in range(8):
                self.notice(carrier, rep, f"Your shipment {self.rng.randint(10**9, 10**10 - 1)} is on its way")
        for customer in self.rng.sample(portals, 20):
            portal = Party(f"{customer.name} Portal", f"no-reply@{customer.key}", "", "utf-8", 0, customer.key, "en")
            self.notice(portal, customer.reps[0], f"Invoice {self.rng.randint(40_000, 99_999)} is available")

    def notice(self, sender: Party, rep: DemoRep, subject: str) -> None:
        moment = self.day(HISTORY_DAYS, 1)
        message = render(sender, [rep.party], [], subject, moment, self.message_id(sender.host), ("", ""),
                     f"{subject}.\n\nThis mailbox is not monitored.\n")
        self.post(Mail(moment, message, ((rep.local, self.inbox(rep, moment)),), "noise", subject))

    def pipeline_reviews(self) -> None:
        """Managers writing to their teams: internal mail that involves no customer."""
        for manager in (rep for rep in REPS if not rep.manager):
            team = [rep for rep in REPS if rep.manager == manager.local]
            for week, moment in enumerate(self.every(14), start=1):
                subject = f"Pipeline review, week {week}"
                message = render(manager.party, [r.party for r in team], [], subject, moment,
                             self.message_id(manager.party.host), ("", ""), "Please update your opportunities before Friday.\n")
                deliveries = ((manager.local, "Sent"), *((r.local, self.inbox(r, moment)) for r in team))
                self.post(Mail(moment, message, deliveries, "internal", subject))

    def bounce(self, customers: list[DemoCustomer]) -> None:
        """A rep mistypes a customer address and the company's MTA returns a delivery report."""
        customer = self.rng.choice([c for c in customers if c.kind == "organisation" and c.coverage == "single-threaded"])
        rep, contact = customer.reps[0], customer.contacts[0].party
        local, _, domain = contact.email.partition("@")
        wrong = Party(contact.name, f"{local[:-1]}@{domain}", contact.greeting_name, contact.charset,
                      contact.utc_offset, contact.host, contact.locale)
        moment = self.day(RECENT_DAYS, 5)
        mail, message_id = self.from_rep(rep, wrong, [], None, "Follow-up", moment, ("", ""), customer.locale)
        moment += timedelta(seconds=40)
        report = delivery_report(rep.email, wrong.email, message_id, moment, self.boundary(),
                                 self.message_id(f"mail.{COMPANY_DOMAIN}"), mail.content)
        self.post(Mail(moment, report, ((rep.local, self.inbox(rep, moment)),), "noise", "Undelivered Mail Returned to Sender"))

    def forwards(self, rep: DemoRep) -> None:
        """The rep sends customer mail on to his own personal address."""
        personal = Party("", rep.personal_addresses[0], "", "utf-8", 0, "", "en")
        received = self.received[rep.local]
        for original, sender in self.rng.sample(received, min(12, len(received))):
            moment = original.date + timedelta(minutes=self.rng.randint(5, 90))
            subject = _prefixed(FORWARD_PREFIXES, rep.locale, original.subject)
            body = (f"---------- Forwarded message ----------\nFrom: {sender.name} <{sender.email}>\n"
                    f"Date: {format_datetime(original.date)}\nSubject: {original.subject}\n")
            message = render(rep.party, [personal], [], subject, moment, self.message_id(rep.party.host), ("", ""), body)
            self.post(Mail(moment, message, ((rep.local, "Sent"),), "human", subject))

    def malformed(self) -> None:
        """Files a real archive holds that no parser can make a message of."""
        moment = self.reference - timedelta(days=3)
        stamp = format_datetime(moment).encode()
        broken = (
            b"To: wang.lei@" + COMPANY_DOMAIN.encode() + b"\nSubject: no sender\nDate: " + stamp + b"\n\nbody\n",
            b"From: Undisclosed sender\nTo: lukas.meyer@" + COMPANY_DOMAIN.encode()
            + b"\nSubject: who wrote this?\nDate: " + stamp + b"\n\nbody\n",
            bytes(range(256)) * 4,
            b"From: =?utf-8?B?!!!garbage?=\nSubject: =?x-unknown?Q?=FF=FE?=\nDate: " + stamp + b"\n\n",
            b"Received: from mx.example by mail\nFrom: trunc",
        )
        for index, raw in enumerate(broken):
            rep = REPS[4] if index % 2 == 0 else REPS[1]
            self.post(Mail(moment + timedelta(minutes=index), raw, ((rep.local, "INBOX"),), "malformed"))

    def inbox(self, rep: DemoRep, moment: datetime) -> str:
        old = moment < self.reference - timedelta(days=ARCHIVE_AFTER_DAYS)
        return "Archive" if rep.archives_old_mail and old else "INBOX"

    def message_id(self, host: str) -> str:
        return f"<{self.rng.getrandbits(64):016x}.{len(self.mails)}@{host}>"

    def boundary(self) -> str:
        return f"=_{self.rng.getrandbits(96):024x}"

    def post(self, mail: Mail) -> Mail:
        self.mails.append(mail)
        return mail


def render(
    sender: Party, to: list[Party], cc: list[Party], subject: str, moment: datetime, message_id: str,
    parent: tuple[str, str], body: str, extra: list[tuple[str, str]] | None = None,
) -> Message:
    """The message as the sender's client writes it: its charset, its time zone, RFC 2047 for non-ASCII."""
    charset = _usable_charset(sender.charset, [subject, body, sender.name, *(p.name for p in to + cc)])
    message = Message()
    message["From"] = _address(sender, charset)
    message["To"] = ", ".join(_address(p, charset) for p in to)
    if cc:
        message["Cc"] = ", ".join(_address(p, charset) for p in cc)
    message["Subject"] = Header(subject, charset) if not subject.isascii() else subject
    message["Date"] = format_datetime(moment.astimezone(timezone(timedelta(hours=sender.utc_offset))))
    if message_id:
        message["Message-ID"] = message_id
    if parent[0]:
        message["In-Reply-To"] = parent[0]
        message["References"] = parent[1]
    for name, value in extra or []:
        message[name] = value
    message["MIME-Version"] = "1.0"
    message.set_payload(body, Charset(charset))
    return message


def _address(party: Party, charset: str) -> str:
    return formataddr((party.name, party.email), charset) if party.name else party.email


def _usable_charset(preferred: str, texts: list[str]) -> str:
    """The client's legacy charset when it can carry the text, as real clients fall back to UTF-8."""
    try:
        for text in texts:
            text.encode(preferred)
    except UnicodeEncodeError:
        return "utf-8"
    return preferred


def _body(rng: random.Random, locale: str, to_name: str, signature: str) -> str:
    lines = rng.sample(BODY_LINES[locale], 2)
    return f"{GREETINGS[locale].format(name=to_name)}\n\n{lines[0]} {lines[1]}\n\n{CLOSINGS[locale]}\n{signature}\n"


def _prefixed(prefixes: dict[str, str], locale: str, subject: str) -> str:
    return prefixes.get(locale, prefixes["en"]) + subject


def delivery_report(
    rep: str, recipient: str, original_id: str, moment: datetime, boundary: str, message_id: str,
    original: Message | bytes,
) -> Message:
    """A bounce as Postfix writes it: multipart/report with a delivery-status part (RFC 3464)."""
    domain = recipient.partition("@")[2]
    headers = bytes(original).split(b"\n\n", 1)[0].decode("ascii", "replace")
    stamp = format_datetime(moment)
    diagnostic = f"550 5.1.1 <{recipient}>: Recipient address rejected: User unknown"
    return Parser().parsestr(
        f"From: Mail Delivery System <MAILER-DAEMON@mail.{COMPANY_DOMAIN}>\n"
        f"To: {rep}\nSubject: Undelivered Mail Returned to Sender\nDate: {stamp}\nMessage-ID: {message_id}\n"
        f"MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\n\n'
        f"This is a MIME-encapsulated message.\n\n--{boundary}\nContent-Type: text/plain; charset=us-ascii\n\n"
        f"I'm sorry to have to inform you that your message {original_id} could not be delivered.\n\n"
        f"<{recipient}>: host mx.{domain}[192.0.2.25] said: {diagnostic}\n\n"
        f"--{boundary}\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; mail.{COMPANY_DOMAIN}\nArrival-Date: {stamp}\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: failed\nStatus: 5.1.1\n"
        f"Remote-MTA: dns; mx.{domain}\nDiagnostic-Code: smtp; {diagnostic}\n\n"
        f"--{boundary}\nContent-Type: text/rfc822-headers\n\n{headers}\n\n--{boundary}--\n"
    )


def write_maildirs(root: Path, mails: list[Mail]) -> int:
    """One Maildir++ per rep (INBOX, .Sent, .Archive, empty .Drafts and .Trash), oldest mail first."""
    folders: dict[tuple[str, str], mailbox.Maildir] = {}
    root.mkdir(parents=True, exist_ok=True)
    for rep in REPS:
        inbox = mailbox.Maildir(root / rep.local, create=True)
        folders[(rep.local, "INBOX")] = inbox
        for name in ("Sent", "Drafts", "Trash", *(("Archive",) if rep.archives_old_mail else ())):
            folders[(rep.local, name)] = inbox.add_folder(name)
    files = 0
    for mail in sorted(mails, key=lambda m: m.date):
        for local, folder in mail.deliveries:
            folders[(local, folder)].add(_maildir_message(mail))
            files += 1
    return files


def _maildir_message(mail: Mail) -> bytes | mailbox.MaildirMessage:
    """Read mail in cur/ with the Seen flag and its date as mtime; broken files stay unread in new/."""
    if isinstance(mail.content, bytes):
        return mail.content
    message = mailbox.MaildirMessage(mail.content)
    message.set_subdir("cur")
    message.add_flag("S")
    message.set_date(mail.date.timestamp())
    return message


def write_address_books(root: Path, customers: list[DemoCustomer], rng: random.Random) -> dict[str, list[str]]:
    """Each rep's company address book, and the phone book of reps who keep customers on their own phone.

    Returns the cards per book file name (relative to `root`).
    """
    root.mkdir(parents=True, exist_ok=True)
    books: dict[str, list[str]] = {}
    for rep in REPS:
        worked = [c for c in customers if rep in c.reps]
        company = [c for c in worked if c.coverage != "personal-channel-only"]
        books[f"{rep.local}-company.vcf"] = [
            _card(rng, contact, customer, "company") for customer in company for contact in customer.contacts
        ]
        if rep.keeps_phone_book:
            books[f"{rep.local}-phone.vcf"] = [
                _card(rng, contact, customer, "phone")
                for customer in worked
                if customer.coverage == "personal-channel-only" or rng.random() < 0.25
                for contact in customer.contacts
            ]
    for name, cards in books.items():
        (root / name).write_text("".join(cards), encoding="utf-8", newline="")
    return books


def _card(rng: random.Random, contact: DemoContact, customer: DemoCustomer, book: Literal["company", "phone"]) -> str:
    card = vobject.vCard()
    card.add("uid").value = f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    card.add("fn").value = contact.party.name
    card.add("n").value = vobject.vcard.Name(family=contact.family, given=contact.given)
    if customer.kind == "organisation":
        card.add("org").value = [customer.name]
    if contact.party.email:
        email = card.add("email")
        email.value = contact.party.email
        email.type_param = "WORK" if customer.kind == "organisation" else "HOME"
    phones = [("CELL", contact.mobile)] if book == "phone" else []
    if book == "company" and customer.office_phone and rng.random() < 0.5:
        phones.append(("WORK", customer.office_phone))
    for kind, number in phones:
        tel = card.add("tel")
        tel.value = _as_dialled(rng, number)
        tel.type_param = kind
    return card.serialize()


def _as_dialled(rng: random.Random, e164: str) -> str:
    """Numbers as people type them: international, spaced, or national (resolved by default_region)."""
    national = "0" + e164.removeprefix("+44")
    return rng.choice((e164, f"+44 {e164[3:7]} {e164[7:]}", f"{national[:5]} {national[5:]}"))


def write_config(root: Path, books: dict[str, list[str]]) -> tuple[str, ...]:
    """custody.toml and policy.yaml, paths relative to the config file; returns the source names."""
    lines = [
        "# custody demo: a fictional company written by `custody demo`. Edit freely; rerun to reset.",
        'data_dir = "data"', 'policy_file = "policy.yaml"', 'default_region = "GB"', "",
    ]
    for rep in REPS:
        manager = f"{rep.manager}@{COMPANY_DOMAIN}" if rep.manager else ""
        lines += ["[[reps]]", *_toml_pairs(email=rep.email, name=rep.name, team=rep.team, manager=manager,
                                           locale=rep.locale, personal_addresses=list(rep.personal_addresses)), ""]
    sources: list[tuple[str, str, str, str, str]] = []
    for rep in REPS:
        sources.append((f"{rep.local}-mail", "maildir", f"mail/{rep.local}", rep.email, "company"))
        for book, channel in (("company", "company"), ("phone", "personal")):
            if f"{rep.local}-{book}.vcf" in books:
                sources.append((f"{rep.local}-{book}", "vcard", f"contacts/{rep.local}-{book}.vcf", rep.email, channel))
    for name, kind, path, owner, channel in sources:
        lines += ["[[sources]]", *_toml_pairs(name=name, kind=kind, path=path, owner=owner, channel=channel), ""]
    (root / "custody.toml").write_text("\n".join(lines), encoding="utf-8")
    policy = {"company_domains": [COMPANY_DOMAIN], "lookback_days": LOOKBACK_DAYS, "dormant_after_days": DORMANT_AFTER_DAYS,
              "notifications": {"company_name": "Northwind", "shared_mailbox": f"customers@{COMPANY_DOMAIN}"}}
    (root / "policy.yaml").write_text(
        "# custody demo policy; see config/policy.default.yaml for every key.\n" + yaml.safe_dump(policy, sort_keys=False),
        encoding="utf-8",
    )
    return tuple(source[0] for source in sources)


def _toml_pairs(**values: str | list[str]) -> list[str]:
    """TOML basic strings and arrays share JSON's escaping, so json.dumps writes valid TOML values."""
    return [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in values.items()]
