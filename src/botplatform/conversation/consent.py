"""STOP / START keywords, in the languages customers most often use. A message consisting of
one of these words (any case, surrounding punctuation ignored) changes the contact's consent."""

from __future__ import annotations

import string
import unicodedata

STOP_WORDS = frozenset(
    {
        "stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "opt out",
        "parar", "pare", "detener", "baja", "cancelar", "sair",  # es, pt
        "arrêter", "arreter", "arrête", "desabonner", "désabonner",  # fr
        "stopp", "stoppen", "abmelden", "abbestellen",  # de
        "basta", "annulla", "disiscriviti",  # it
        "стоп", "отписаться",  # ru
        "توقف", "الغاء", "إلغاء",  # ar
        "रोकें", "बंद",  # hi
        "dur", "iptal",  # tr
        "berhenti",  # id, ms
    }
)  # fmt: skip
START_WORDS = frozenset(
    {
        "start", "unstop", "subscribe", "resume", "optin", "opt in",
        "iniciar", "alta", "reanudar", "começar", "comecar", "voltar",
        "commencer", "reprendre", "abonner",
        "anmelden", "fortsetzen",
        "inizia", "riprendi", "iscriviti",
        "старт", "подписаться",
        "ابدأ", "اشتراك",
        "शुरू",
        "başla", "basla",
        "mulai",
    }
)  # fmt: skip


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text).strip().casefold()
    return text.strip(string.punctuation + "¡¿!?.。 ").replace("-", " ").strip()


def consent_keyword(text: str | None) -> str | None:
    """ "opt_out", "opt_in", or None when the message is not a consent keyword."""
    if not text or len(text) > 40:
        return None
    word = _normalise(text)
    if word in STOP_WORDS:
        return "opt_out"
    if word in START_WORDS:
        return "opt_in"
    return None
