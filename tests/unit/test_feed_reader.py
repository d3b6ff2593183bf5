"""RSS and Atom files and news sitemaps as sources: one article per entry, bad entries reported."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from poshuk.documents import Article
from poshuk.errors import BadRecordError
from poshuk.feed_reader import html_paragraphs
from poshuk.language import LanguageDetector
from poshuk.readers import iter_sources, read_articles

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
  <title>Київський вісник</title><link>https://kv.example</link><language>uk-ua</language>
  <item>
    <title>Дрони атакували Одещину</title>
    <link>https://kv.example/1</link><guid>https://kv.example/1</guid>
    <pubDate>Tue, 01 Aug 2023 09:30:00 +0300</pubDate>
    <category>війна</category><category>дрони</category>
    <description>Короткий анонс.</description>
    <content:encoded><![CDATA[<p>Уночі дрони атакували порт.</p><script>alert(1)</script>
      <p>ППО збила <b>більшість</b>.</p>]]></content:encoded>
  </item>
  <item>
    <title>Only a summary</title><guid isPermaLink="false">kv-2</guid>
    <description>&lt;p&gt;Перший абзац.&lt;br&gt;Другий рядок.&lt;/p&gt;</description>
  </item>
  <item><title>No text at all</title><guid>kv-3</guid></item>
</channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Brussels Briefing</title><id>urn:bb</id><updated>2024-03-02T10:00:00Z</updated>
  <entry>
    <id>urn:bb:7</id><title>ECB holds rates</title><updated>2024-03-02T10:00:00Z</updated>
    <link href="https://bb.example/7"/>
    <content type="html">&lt;p&gt;The European Central Bank kept interest rates unchanged.&lt;/p&gt;</content>
  </entry>
</feed>
"""


def _read(tmp_path: Path, name: str, text: str) -> list[Article | BadRecordError]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return list(read_articles(path, detector=LanguageDetector()))


def test_an_rss_file_gives_one_article_per_entry(tmp_path: Path) -> None:
    first, second, bad = _read(tmp_path, "kv.rss", RSS)
    assert isinstance(first, Article) and isinstance(second, Article)
    assert first.id == "https://kv.example/1" and first.url == "https://kv.example/1"
    assert first.title == "Дрони атакували Одещину" and first.source == "Київський вісник"
    assert first.text == "Уночі дрони атакували порт.\n\nППО збила більшість."  # content, not the summary
    assert "alert" not in first.text  # feedparser drops scripts
    assert first.published_at == datetime(2023, 8, 1, 6, 30, tzinfo=UTC) and first.lang == "uk"
    assert first.tags == ("війна", "дрони")
    assert second.id == "kv-2" and second.text == "Перший абзац.\n\nДругий рядок." and second.url is None
    assert second.lang == "uk"  # the channel's language
    assert isinstance(bad, BadRecordError) and "'kv-3' has no text" in str(bad) and "(entry 3)" in bad.one_line()


def test_an_atom_file_and_its_language_detected(tmp_path: Path) -> None:
    (entry,) = _read(tmp_path, "bb.atom", ATOM)
    assert isinstance(entry, Article)
    assert (entry.id, entry.title, entry.url, entry.source) == (
        "urn:bb:7",
        "ECB holds rates",
        "https://bb.example/7",
        "Brussels Briefing",
    )
    assert entry.published_at == datetime(2024, 3, 2, 10, 0, tzinfo=UTC) and entry.lang == "en"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "sitemap.xml",
            '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            "<url><loc>https://kv.example/1</loc></url></urlset>",
            "a sitemap lists links without their text",
        ),
        ("config.xml", '<?xml version="1.0"?><settings><a>1</a></settings>', "not an RSS or Atom feed"),
        ("empty.rss", '<rss version="2.0"><channel><title>x</title></channel></rss>', "the feed has no entries"),
        ("blank.atom", "   \n", "empty file"),
    ],
)
def test_files_that_hold_no_entries_are_bad_records(tmp_path: Path, name: str, text: str, message: str) -> None:
    (bad,) = _read(tmp_path, name, text)
    assert isinstance(bad, BadRecordError) and message in str(bad)


NEWS_SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
  <url><loc>https://kv.example/2023/08/drones</loc>
    <news:news>
      <news:publication><news:name>Київський вісник</news:name><news:language>uk</news:language></news:publication>
      <news:publication_date>2023-08-01T09:30:00+03:00</news:publication_date>
      <news:title>Дрони атакували Одещину</news:title>
      <news:keywords>війна, дрони</news:keywords>
    </news:news></url>
  <url><loc>https://kv.example/about</loc></url>
  <url><loc>https://kv.example/contacts</loc></url>
</urlset>
"""


def test_a_news_sitemap_gives_headline_articles_and_reports_its_plain_links(tmp_path: Path) -> None:
    article, untitled = _read(tmp_path, "news-sitemap.xml", NEWS_SITEMAP)
    assert isinstance(article, Article)
    assert (article.id, article.title, article.text, article.url, article.source, article.lang, article.tags) == (
        "https://kv.example/2023/08/drones",
        "Дрони атакували Одещину",
        "Дрони атакували Одещину",
        "https://kv.example/2023/08/drones",
        "Київський вісник",
        "uk",
        ("війна", "дрони"),
    )
    assert article.published_at == datetime(2023, 8, 1, 6, 30, tzinfo=UTC)
    assert isinstance(untitled, BadRecordError) and "2 link(s) without a news title" in str(untitled)


def test_a_sitemap_index_and_a_sitemap_bomb_are_reported_not_expanded(tmp_path: Path) -> None:
    index = '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"/>'
    (bad,) = _read(tmp_path, "index.xml", index)
    assert isinstance(bad, BadRecordError) and "sitemap index" in str(bad)
    entities = '<!ENTITY a0 "ha">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE urlset [{entities}]><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
        ' xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"><url><loc>https://x.example/1</loc>'
        "<news:news><news:title>&a9;</news:title></news:news></url></urlset>"
    )
    records = _read(tmp_path, "bomb.xml", bomb)
    assert all(isinstance(r, BadRecordError) or len(r.text) < 1000 for r in records)


def test_an_entity_bomb_is_not_expanded(tmp_path: Path) -> None:
    """A billion-laughs feed (10 levels of entities, each ten of the one below) must not grow in memory."""
    entities = '<!ENTITY a0 "ha">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE rss [{entities}]><rss version="2.0"><channel><title>x</title>'
        "<item><guid>1</guid><title>t</title><description>&a9;</description></item></channel></rss>"
    )
    records = _read(tmp_path, "bomb.rss", bomb)
    assert all(isinstance(r, BadRecordError) or len(r.text) < 1000 for r in records)


def test_feeds_are_found_in_folders(tmp_path: Path) -> None:
    for name in ("a.rss", "b.atom", "c.xml", "d.csv"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    assert [p.name for p in iter_sources([tmp_path])] == ["a.rss", "b.atom", "c.xml"]


def test_entry_html_becomes_paragraphs() -> None:
    assert html_paragraphs("plain text") == ["plain text"]
    assert html_paragraphs("<h2>Заголовок</h2><ul><li>один</li><li>два</li></ul>текст") == [
        "Заголовок",
        "один",
        "два",
        "текст",
    ]
    assert html_paragraphs("<p>   </p>") == []
