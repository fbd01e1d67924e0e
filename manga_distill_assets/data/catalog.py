"""The store's catalogue: the titles, formats, places and words its customers write about.

Titles are real series with real creators and publishers; volume counts are approximate and stand still at
the catalogue's snapshot. `trending_from` is the day a title starts showing up in the store's search traffic:
roughly the debut for established series, and for the titles dated in 2026 a simulated English launch or
anime season, so that query logs for later days mention titles that earlier days never did. The labelled
set is drawn up as of `LABELLED_AS_OF` and therefore never mentions those newer titles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

LABELLED_AS_OF = date(2025, 12, 31)


@dataclass(frozen=True)
class Title:
    name: str
    japanese_name: str
    author: str
    publisher: str
    original_publisher: str
    volumes: int
    demographic: str
    genre: str
    trending_from: date
    aliases: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        """Every way the title is written in a query, for tests that look for mentions."""
        return (self.name, self.japanese_name, *self.aliases)


def _since(year: int, month: int = 1, day: int = 1) -> date:
    return date(year, month, day)


# Ordered by how often customers ask about them, most first: query volume follows this order.
TITLES: tuple[Title, ...] = (
    Title("One Piece", "ワンピース", "Eiichiro Oda", "Viz Media", "Shueisha", 110, "shōnen", "adventure",
          _since(1997), ("OP",)),
    Title("Jujutsu Kaisen", "呪術廻戦", "Gege Akutami", "Viz Media", "Shueisha", 30, "shōnen", "dark fantasy",
          _since(2018), ("JJK", "jujutsu")),
    Title("Chainsaw Man", "チェンソーマン", "Tatsuki Fujimoto", "Viz Media", "Shueisha", 20, "shōnen",
          "horror", _since(2018), ("CSM", "chainsawman")),
    Title("Frieren: Beyond Journey's End", "葬送のフリーレン", "Kanehito Yamada and Tsukasa Abe", "Viz Media",
          "Shogakukan", 14, "shōnen", "fantasy", _since(2020), ("Frieren",)),
    Title("Spy x Family", "SPY×FAMILY", "Tatsuya Endo", "Viz Media", "Shueisha", 15, "shōnen", "comedy",
          _since(2019), ("SpyxFamily", "spy family")),
    Title("Berserk", "ベルセルク", "Kentaro Miura", "Dark Horse", "Hakusensha", 42, "seinen", "dark fantasy",
          _since(1990)),
    Title("Blue Lock", "ブルーロック", "Muneyuki Kaneshiro and Yusuke Nomura", "Kodansha USA", "Kodansha", 32,
          "shōnen", "sports", _since(2018)),
    Title("Dandadan", "ダンダダン", "Yukinobu Tatsu", "Viz Media", "Shueisha", 19, "shōnen", "supernatural",
          _since(2021), ("Dan Da Dan",)),
    Title("Oshi no Ko", "【推しの子】", "Aka Akasaka and Mengo Yokoyari", "Yen Press", "Shueisha", 16,
          "seinen", "drama", _since(2020)),
    Title("Kaguya-sama: Love Is War", "かぐや様は告らせたい", "Aka Akasaka", "Viz Media", "Shueisha", 28,
          "seinen", "romantic comedy", _since(2015), ("Kaguya-sama", "kaguya sama")),
    Title("Kagurabachi", "カグラバチ", "Takeru Hokazono", "Viz Media", "Shueisha", 7, "shōnen", "action",
          _since(2023, 9, 18)),
    Title("Witch Hat Atelier", "とんがり帽子のアトリエ", "Kamome Shirahama", "Kodansha USA", "Kodansha", 14,
          "seinen", "fantasy", _since(2016)),
    Title("Vagabond", "バガボンド", "Takehiko Inoue", "Viz Media", "Kodansha", 37, "seinen", "historical",
          _since(1998)),
    Title("Attack on Titan", "進撃の巨人", "Hajime Isayama", "Kodansha USA", "Kodansha", 34, "shōnen",
          "dark fantasy", _since(2009), ("AoT", "shingeki")),
    Title("Demon Slayer", "鬼滅の刃", "Koyoharu Gotouge", "Viz Media", "Shueisha", 23, "shōnen", "action",
          _since(2016), ("Kimetsu no Yaiba",)),
    Title("My Hero Academia", "僕のヒーローアカデミア", "Kohei Horikoshi", "Viz Media", "Shueisha", 42,
          "shōnen", "superhero", _since(2014), ("MHA", "boku no hero")),
    Title("Naruto", "NARUTO -ナルト-", "Masashi Kishimoto", "Viz Media", "Shueisha", 72, "shōnen", "action",
          _since(1999)),
    Title("Sakamoto Days", "SAKAMOTO DAYS", "Yuto Suzuki", "Viz Media", "Shueisha", 21, "shōnen", "action",
          _since(2020)),
    Title("Kaiju No. 8", "怪獣8号", "Naoya Matsumoto", "Viz Media", "Shueisha", 15, "shōnen", "sci-fi",
          _since(2020), ("Kaiju 8",)),
    Title("Vinland Saga", "ヴィンランド・サガ", "Makoto Yukimura", "Kodansha USA", "Kodansha", 14, "seinen",
          "historical", _since(2005)),
    Title("Haikyu!!", "ハイキュー!!", "Haruichi Furudate", "Viz Media", "Shueisha", 45, "shōnen", "sports",
          _since(2012), ("Haikyuu", "haikyu")),
    Title("Delicious in Dungeon", "ダンジョン飯", "Ryoko Kui", "Yen Press", "Kadokawa", 14, "seinen",
          "fantasy", _since(2014), ("Dungeon Meshi",)),
    Title("The Apothecary Diaries", "薬屋のひとりごと", "Natsu Hyuuga and Nekokurage", "Square Enix Manga",
          "Square Enix", 13, "seinen", "mystery", _since(2017), ("Apothecary Diaries", "Kusuriya")),
    Title("Dragon Ball", "ドラゴンボール", "Akira Toriyama", "Viz Media", "Shueisha", 42, "shōnen", "action",
          _since(1984), ("DB", "Dragon Ball Z")),
    Title("Hunter x Hunter", "HUNTER×HUNTER", "Yoshihiro Togashi", "Viz Media", "Shueisha", 38, "shōnen",
          "adventure", _since(1998), ("HxH",)),
    Title("Death Note", "DEATH NOTE", "Tsugumi Ohba and Takeshi Obata", "Viz Media", "Shueisha", 12, "shōnen",
          "mystery", _since(2003)),
    Title("Fullmetal Alchemist", "鋼の錬金術師", "Hiromu Arakawa", "Viz Media", "Square Enix", 27, "shōnen",
          "fantasy", _since(2001), ("FMA", "Hagaren")),
    Title("Monster", "MONSTER", "Naoki Urasawa", "Viz Media", "Shogakukan", 18, "seinen", "thriller",
          _since(1994)),
    Title("Bleach", "BLEACH", "Tite Kubo", "Viz Media", "Shueisha", 74, "shōnen", "action", _since(2001)),
    Title("One-Punch Man", "ワンパンマン", "ONE and Yusuke Murata", "Viz Media", "Shueisha", 31, "seinen",
          "superhero", _since(2012), ("OPM", "one punch man")),
    Title("Mob Psycho 100", "モブサイコ100", "ONE", "Dark Horse", "Shogakukan", 16, "shōnen", "supernatural",
          _since(2012), ("Mob Psycho",)),
    Title("Tokyo Ghoul", "東京喰種", "Sui Ishida", "Viz Media", "Shueisha", 14, "seinen", "horror",
          _since(2011)),
    Title("That Time I Got Reincarnated as a Slime", "転生したらスライムだった件", "Fuse and Taiki Kawakami",
          "Kodansha USA", "Kodansha", 27, "shōnen", "isekai", _since(2015), ("Slime", "Tensura")),
    Title("Mushoku Tensei: Jobless Reincarnation", "無職転生", "Rifujin na Magonote and Yuka Fujikawa",
          "Seven Seas", "Kadokawa", 21, "seinen", "isekai", _since(2014), ("Mushoku Tensei",)),
    Title("Re:Zero", "Re:ゼロから始める異世界生活", "Tappei Nagatsuki", "Yen Press", "Kadokawa", 11, "seinen",
          "isekai", _since(2014), ("ReZero", "Re Zero")),
    Title("Made in Abyss", "メイドインアビス", "Akihito Tsukushi", "Seven Seas", "Takeshobo", 13, "seinen",
          "adventure", _since(2012)),
    Title("Fruits Basket", "フルーツバスケット", "Natsuki Takaya", "Yen Press", "Hakusensha", 12, "shōjo",
          "romance", _since(1998), ("Furuba",)),
    Title("Nana", "NANA", "Ai Yazawa", "Viz Media", "Shueisha", 21, "josei", "drama", _since(2000)),
    Title("Sailor Moon", "美少女戦士セーラームーン", "Naoko Takeuchi", "Kodansha USA", "Kodansha", 12,
          "shōjo", "magical girl", _since(1991)),
    Title("Cardcaptor Sakura", "カードキャプターさくら", "CLAMP", "Kodansha USA", "Kodansha", 12, "shōjo",
          "magical girl", _since(1996), ("CCS",)),
    Title("Yotsuba&!", "よつばと!", "Kiyohiko Azuma", "Yen Press", "Kadokawa", 16, "shōnen", "slice of life",
          _since(2003), ("Yotsuba",)),
    Title("Komi Can't Communicate", "古見さんは、コミュ症です。", "Tomohito Oda", "Viz Media", "Shogakukan",
          36, "shōnen", "romantic comedy", _since(2016), ("Komi-san", "Komi")),
    Title("Blue Period", "ブルーピリオド", "Tsubasa Yamaguchi", "Kodansha USA", "Kodansha", 16, "seinen",
          "drama", _since(2017)),
    Title("Akira", "AKIRA", "Katsuhiro Otomo", "Kodansha USA", "Kodansha", 6, "seinen", "sci-fi",
          _since(1982)),
    Title("Uzumaki", "うずまき", "Junji Ito", "Viz Media", "Shogakukan", 1, "seinen", "horror", _since(1998)),
    Title("Goodnight Punpun", "おやすみプンプン", "Inio Asano", "Viz Media", "Shogakukan", 7, "seinen",
          "drama", _since(2007), ("Punpun",)),
    Title("Ranma 1/2", "らんま1/2", "Rumiko Takahashi", "Viz Media", "Shogakukan", 38, "shōnen", "comedy",
          _since(1987), ("Ranma",)),
    Title("Hellsing", "HELLSING", "Kohta Hirano", "Dark Horse", "Shōnen Gahōsha", 10, "seinen", "horror",
          _since(1997)),
    Title("Lone Wolf and Cub", "子連れ狼", "Kazuo Koike and Goseki Kojima", "Dark Horse", "Futabasha", 28,
          "seinen", "historical", _since(1970)),
    Title("Gachiakuta", "ガチアクタ", "Kei Urana", "Kodansha USA", "Kodansha", 14, "shōnen", "action",
          _since(2022)),
    Title("Blue Box", "アオのハコ", "Kouji Miura", "Viz Media", "Shueisha", 20, "shōnen", "sports romance",
          _since(2021), ("Ao no Hako",)),
    Title("The Summer Hikaru Died", "光が死んだ夏", "Mokumokuren", "Yen Press", "Kadokawa", 7, "seinen",
          "horror", _since(2025, 7, 5), ("Hikaru ga Shinda Natsu",)),
    Title("Ichi the Witch", "魔男のイチ", "Osamu Nishi and Shiro Usazaki", "Viz Media", "Shueisha", 4,
          "shōnen", "fantasy", _since(2026, 2, 16)),
    Title("Kill Blue", "キルアオ", "Tadatoshi Fujimaki", "Viz Media", "Shueisha", 12, "shōnen",
          "action comedy", _since(2026, 4, 6)),
    Title("Nue's Exorcist", "鵺の陰陽師", "Kota Kawae", "Viz Media", "Shueisha", 9, "shōnen", "supernatural",
          _since(2026, 6, 22), ("Nue no Onmyouji",)),
    Title("Akane-banashi", "あかね噺", "Yuki Suenaga and Takamasa Moue", "Viz Media", "Shueisha", 16,
          "shōnen", "drama", _since(2026, 8, 10), ("Akane banashi",)),
    Title("Ruri Dragon", "ルリドラゴン", "Masaoki Shindo", "Viz Media", "Shueisha", 3, "shōnen",
          "slice of life", _since(2026, 10, 19)),
    Title("Centuria", "センチュリア", "Tohru Kuramori and Yoshiaki Mizuno", "Viz Media", "Shueisha", 4,
          "shōnen", "fantasy", _since(2026, 11, 16)),
)  # fmt: skip


@dataclass(frozen=True)
class Format:
    name: str
    usd: tuple[float, float]
    jpy: tuple[int, int]


FORMATS: tuple[Format, ...] = (
    Format("paperback", (9.99, 14.99), (484, 594)),
    Format("box set", (79.99, 249.99), (9800, 38500)),
    Format("omnibus", (17.99, 29.99), (1320, 2200)),
    Format("3-in-1 edition", (14.99, 19.99), (1100, 1650)),
    Format("deluxe hardcover", (34.99, 59.99), (2750, 4400)),
    Format("digital edition", (6.99, 10.99), (440, 550)),
    Format("collector's edition", (49.99, 129.99), (4950, 12100)),
    Format("kanzenban", (19.99, 29.99), (1100, 1760)),
    Format("aizōban", (24.99, 39.99), (1320, 2420)),
    Format("tankōbon", (9.99, 13.99), (484, 594)),
)

STORES = (
    "Shinjuku",
    "Akihabara",
    "Shibuya",
    "Ikebukuro",
    "Osaka Namba",
    "Manhattan",
    "Brooklyn",
    "Little Tokyo",
    "San Francisco",
    "Seattle",
    "Austin",
    "Toronto",
    "Vancouver",
    "London Camden",
    "Manchester",
    "Sydney",
)

COUNTRIES = (
    "Canada",
    "the UK",
    "Australia",
    "Germany",
    "France",
    "Japan",
    "Mexico",
    "Brazil",
    "Ireland",
    "New Zealand",
    "Singapore",
    "the Philippines",
    "Hawaii",
    "Alaska",
    "Puerto Rico",
    "Spain",
    "the Netherlands",
    "Sweden",
    "India",
    "South Africa",
)

GENRES = (
    "fantasy",
    "dark fantasy",
    "romance",
    "horror",
    "sports",
    "isekai",
    "slice of life",
    "mystery",
    "sci-fi",
    "action",
    "comedy",
    "historical",
    "romantic comedy",
    "cozy",
)

# Each demographic word as customers spell it: with macrons, doubled vowels, or plain.
DEMOGRAPHICS: dict[str, tuple[str, ...]] = {
    "shōnen": ("shōnen", "shounen", "shonen"),
    "seinen": ("seinen",),
    "shōjo": ("shōjo", "shoujo", "shojo"),
    "josei": ("josei",),
}

# Shop words from Japanese fandom that customers mix into English queries.
ROMAJI_SHOP_TERMS: dict[str, tuple[str, ...]] = {
    "tankōbon": ("tankōbon", "tankobon", "tankoubon"),
    "kanzenban": ("kanzenban",),
    "aizōban": ("aizōban", "aizoban", "aizouban"),
    "obi": ("obi", "obi strip"),
    "tokuten": ("tokuten", "store bonus"),
    "shikishi": ("shikishi", "shikishi board"),
    "mangaka": ("mangaka",),
}

# Greetings and fillers that carry no intent: noise a classifier has to learn to ignore.
ROMAJI_FILLERS = (
    "sumimasen",
    "arigatou",
    "arigato gozaimasu",
    "onegaishimasu",
    "yoroshiku",
    "gomen",
    "sugoi",
    "kawaii",
    "yatta",
    "itadakimasu",
    "senpai",
    "ne",
    "desu",
)


def titles_trending_on(day: date, titles: Sequence[Title] = TITLES) -> list[Title]:
    """Titles customers can ask about on `day`, in catalogue (popularity) order."""
    return [title for title in titles if title.trending_from <= day]
