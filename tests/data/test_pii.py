"""PII redaction (tessera.data.pii): each kind found in realistic sentences, ordinary numbers untouched."""

from __future__ import annotations

from tessera.data.pii import is_valid_codice_fiscale, is_valid_iban, redact_pii


def test_email_and_international_phone_in_italian():
    text, counts = redact_pii("Scrivete a mario.rossi@example.it oppure chiamate il +39 06 1234 5678.")
    assert text == "Scrivete a <EMAIL> oppure chiamate il <PHONE>."
    assert counts == {"email": 1, "iban": 0, "codice_fiscale": 0, "phone": 1}


def test_italian_mobile_and_landline_numbers():
    text, counts = redact_pii("Il mio cellulare è 333 1234567, il fisso 02-12345678.")
    assert text == "Il mio cellulare è <PHONE>, il fisso <PHONE>."
    assert counts["phone"] == 2


def test_iban_and_codice_fiscale():
    text, counts = redact_pii(
        "Bonifico su IT60X0542811101000000123456 intestato a Mario Rossi, codice fiscale RSSMRA85T10A562S.")
    assert text == "Bonifico su <IBAN> intestato a Mario Rossi, codice fiscale <CODICE_FISCALE>."
    assert counts["iban"] == 1 and counts["codice_fiscale"] == 1


def test_grouped_german_iban_and_english_contact():
    text, counts = redact_pii("Überweisung an DE89 3704 0044 0532 0130 00 bitte bis 15.03.2024.")
    assert text == "Überweisung an <IBAN> bitte bis 15.03.2024."
    text, counts = redact_pii("Call (555) 123-4567 or write to john.doe@mail.co.uk")
    assert text == "Call <PHONE> or write to <EMAIL>"


def test_checksums_reject_lookalikes():
    assert is_valid_iban("IT60X0542811101000000123456")
    assert not is_valid_iban("IT60X0542811101000000123457")
    assert is_valid_codice_fiscale("RSSMRA85T10A562S")
    assert not is_valid_codice_fiscale("RSSMRA85T10A562A")
    text, counts = redact_pii("Conto IT60X0542811101000000123457, codice RSSMRA85T10A562A.")
    assert counts["iban"] == 0 and counts["codice_fiscale"] == 0


def test_years_verses_and_counts_are_not_pii():
    for text in (
        "Nel 1848 a Milano, il 5 maggio 1821, 300 soldati, 12.000 uomini; Genesi 1:1-3; legge 633/1941.",
        "Numbers 1:46 counts 603550 men; in 1611 the translation appeared; ISBN 978-88-04-12345-6.",
        "Et Adam vécut cent trente ans (Genèse 5:3), soit 930 ans en tout.",
    ):
        assert redact_pii(text) == (text, {"email": 0, "iban": 0, "codice_fiscale": 0, "phone": 0})
