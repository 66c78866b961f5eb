-- The example legacy customer table KUNDEN_STAMM ("customer master"), as an ERP might keep it.
-- Portable: runs unchanged on SQLite, PostgreSQL and MariaDB. ORT (city) is deliberately not
-- mapped by customers-legacy.xml: a mapping may cover only part of a legacy table.
CREATE TABLE KUNDEN_STAMM (
    KDNR        INTEGER      NOT NULL PRIMARY KEY,
    NAME1       VARCHAR(120) NOT NULL,
    TELEFON     VARCHAR(40),
    EMAIL_ADR   VARCHAR(120),
    PRIORITAET  INTEGER,
    KONTO_NR    VARCHAR(20),
    VIP_KZ      BOOLEAN,
    ORT         VARCHAR(60)
);
INSERT INTO KUNDEN_STAMM (KDNR, NAME1, TELEFON, EMAIL_ADR, PRIORITAET, KONTO_NR, VIP_KZ, ORT) VALUES (10001, 'Stadtwerke Musterstadt GmbH', '+4930123450', 'einkauf@stadtwerke-musterstadt.example', 5, 'DE-10001', TRUE, 'Musterstadt');
INSERT INTO KUNDEN_STAMM (KDNR, NAME1, TELEFON, EMAIL_ADR, PRIORITAET, KONTO_NR, VIP_KZ, ORT) VALUES (10002, 'Anna Schmidt', '+4930123451', 'anna.schmidt@example.org', 1, 'DE-10002', FALSE, 'Berlin');
INSERT INTO KUNDEN_STAMM (KDNR, NAME1, TELEFON, EMAIL_ADR, PRIORITAET, KONTO_NR, VIP_KZ, ORT) VALUES (10003, 'Jonas Weber', '+4989555010', 'jonas.weber@example.org', 1, 'DE-10003', FALSE, 'München');
INSERT INTO KUNDEN_STAMM (KDNR, NAME1, TELEFON, EMAIL_ADR, PRIORITAET, KONTO_NR, VIP_KZ, ORT) VALUES (10004, 'Bäckerei Müller KG', '+4940777001', 'info@baeckerei-mueller.example', 3, 'DE-10004', TRUE, 'Hamburg');
INSERT INTO KUNDEN_STAMM (KDNR, NAME1, TELEFON, EMAIL_ADR, PRIORITAET, KONTO_NR, VIP_KZ, ORT) VALUES (10005, 'Lena Fischer', '+4922133344', NULL, 2, 'DE-10005', FALSE, 'Köln');
INSERT INTO KUNDEN_STAMM (KDNR, NAME1, TELEFON, EMAIL_ADR, PRIORITAET, KONTO_NR, VIP_KZ, ORT) VALUES (10006, 'Hotel Seeblick', '+4975311220', 'rezeption@seeblick.example', 4, 'DE-10006', TRUE, 'Konstanz');
INSERT INTO KUNDEN_STAMM (KDNR, NAME1, TELEFON, EMAIL_ADR, PRIORITAET, KONTO_NR, VIP_KZ, ORT) VALUES (10007, 'Mehmet Yilmaz', '+4969444555', 'm.yilmaz@example.org', 1, 'DE-10007', FALSE, 'Frankfurt');
INSERT INTO KUNDEN_STAMM (KDNR, NAME1, TELEFON, EMAIL_ADR, PRIORITAET, KONTO_NR, VIP_KZ, ORT) VALUES (10008, 'Sophie Wagner', NULL, 'sophie.wagner@example.org', 1, 'DE-10008', FALSE, 'Leipzig');
INSERT INTO KUNDEN_STAMM (KDNR, NAME1, TELEFON, EMAIL_ADR, PRIORITAET, KONTO_NR, VIP_KZ, ORT) VALUES (10009, 'Klinikum Nord', '+4951199887', 'technik@klinikum-nord.example', 5, 'DE-10009', TRUE, 'Hannover');
INSERT INTO KUNDEN_STAMM (KDNR, NAME1, TELEFON, EMAIL_ADR, PRIORITAET, KONTO_NR, VIP_KZ, ORT) VALUES (10010, 'Paul Becker', '+4971166554', 'paul.becker@example.org', 2, 'DE-10010', FALSE, 'Stuttgart');
