"""Fixed tables of the demo: categories, 48 suppliers, 170 products, 12 lots, 4 group-buy
campaigns and one apartment-complex order.

The counts follow the district's first call for suppliers (by 2002-06-30): 20 farm and
specialty suppliers with 78 products, and 28 small factories with 92 products. The
businesses, people, numbers and accounts are invented. Everything here is a constant
or derived from a constant, so every load produces the same rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from engine.auction.rules import DEFAULT_INCREMENTS

LOCAL_REGION = "광주광역시 광산구"

# -- categories -----------------------------------------------------------------

# Rows of (code, name_ko, name_en, parent code or None). Parents come before their children.
CATEGORIES: tuple[tuple[str, str, str, str | None], ...] = (
    ("food", "식품류", "Food", None),
    ("household", "생활용품", "Household goods", None),
    ("produce", "과일/채소류", "Fruit & vegetables", None),
    ("specialty", "특산품", "Specialty products", None),
    ("other", "기타", "Other", None),
    ("food-kimchi", "김치·반찬", "Kimchi & side dishes", "food"),
    ("food-rice", "쌀·잡곡", "Rice & grains", "food"),
    ("food-sauce", "장류·기름", "Sauces & oils", "food"),
    ("food-processed", "가공식품", "Processed foods", "food"),
    ("household-kitchen", "주방용품", "Kitchenware", "household"),
    ("household-cleaning", "세제·청소용품", "Detergents & cleaning", "household"),
    ("household-textile", "수건·침구", "Towels & bedding", "household"),
    ("household-storage", "밀폐용기·수납", "Containers & storage", "household"),
    ("household-lighting", "조명·전기용품", "Lighting & electrical", "household"),
    ("household-tools", "공구·철물", "Tools & hardware", "household"),
    ("produce-fruit", "과일", "Fruit", "produce"),
    ("produce-vegetable", "채소", "Vegetables", "produce"),
    ("specialty-laver", "김·해조류", "Laver & seaweed", "specialty"),
    ("specialty-dried-fish", "멸치·건어물", "Anchovies & dried fish", "specialty"),
    ("specialty-traditional", "전통식품·꿀", "Traditional foods & honey", "specialty"),
    ("specialty-giftset", "명절 선물세트", "Holiday gift sets", "specialty"),
    ("other-flower", "화훼·분재", "Flowers & bonsai", "other"),
    ("other-craft", "공예·생활잡화", "Crafts & sundries", "other"),
    ("other-stationery", "문구·사무용품", "Stationery", "other"),
)

# -- suppliers and products -------------------------------------------------------


@dataclass(frozen=True)
class DemoProduct:
    name: str
    category: str  # a subcategory code from CATEGORIES
    unit: str
    price_won: int
    description: str


@dataclass(frozen=True)
class DemoSupplier:
    key: str  # ASCII slug: the e-mail domain and the handle lots refer to
    name: str
    kind: str  # 'farm' or 'manufactured'
    representative: str
    address: str
    region: str  # 시·군·구 of the address, shown in the origin label
    products: tuple[DemoProduct, ...]

    @property
    def is_local(self) -> bool:
        return self.region == LOCAL_REGION

    @property
    def origin_label(self) -> str:
        if self.kind == "farm":
            return f"국내산({self.region})"
        return f"제조국: 대한민국 ({self.region})"


P = DemoProduct


def _farm(key: str, name: str, representative: str, address: str, *products: DemoProduct,
          region: str = LOCAL_REGION) -> DemoSupplier:
    return DemoSupplier(key, name, "farm", representative, address, region, products)


def _factory(key: str, name: str, representative: str, address: str, *products: DemoProduct,
             region: str = LOCAL_REGION) -> DemoSupplier:
    return DemoSupplier(key, name, "manufactured", representative, address, region, products)


# The supplier that the demo supplier account manages.
DEMO_SUPPLIER_KEY = "gwangsan-gim"

FARM_SUPPLIERS: tuple[DemoSupplier, ...] = (
    _farm(
        "gwangsan-gim", "광산햇김상회", "정해숙", "광주광역시 광산구 송정로 41",
        P("광산 햇김 선물세트 10호", "specialty-laver", "1세트(20봉)", 30000,
          "첫물 김을 두 번 구워 기름 없이 담은 명절 선물세트입니다."),
        P("재래김 전장 선물세트", "specialty-laver", "1세트(전장 10봉)", 45000,
          "전장 재래김을 들기름에 구워 천일염으로 간했습니다."),
        P("돌김 선물세트 프리미엄", "specialty-laver", "1세트(15봉)", 58000,
          "거칠고 고소한 돌김을 한 장씩 구운 고급 선물세트입니다."),
        P("도시락김 72봉", "specialty-laver", "1박스(72봉)", 25000,
          "한 끼에 한 봉씩 먹기 좋은 소포장 조미김입니다."),
        P("국물용 멸치 선물세트", "specialty-dried-fish", "1세트(1.5kg)", 40000,
          "육수용 대멸치를 골라 햇볕에 말려 담았습니다."),
        P("김·멸치 혼합 선물세트", "specialty-giftset", "1세트", 52000,
          "햇김 10봉과 볶음용 세멸치 500g을 함께 담은 명절 세트입니다."),
    ),
    _farm(
        "imgok-rice", "임곡 황룡강쌀 영농조합법인", "박종철", "광주광역시 광산구 임곡로 215",
        P("임곡 황룡강쌀 10kg", "food-rice", "10kg", 32000,
          "황룡강 물로 키운 햅쌀을 주문받은 날 도정해 보냅니다."),
        P("임곡 황룡강쌀 20kg", "food-rice", "20kg", 61000,
          "식구 많은 집에 알맞은 20kg 포장입니다."),
        P("임곡 현미 5kg", "food-rice", "5kg", 19000,
          "쌀겨층을 살려 씹을수록 고소한 현미입니다."),
        P("임곡 찹쌀 4kg", "food-rice", "4kg", 22000,
          "떡과 약밥에 좋은 찰기 있는 찹쌀입니다."),
    ),
    _farm(
        "bonryang-rice", "본량 들녘 작목반", "김영수", "광주광역시 광산구 본량로 88",
        P("본량 들녘쌀 10kg", "food-rice", "10kg", 31000,
          "본량 들녘에서 거둔 추청벼를 저온 창고에 보관했습니다."),
        P("본량 들녘쌀 20kg", "food-rice", "20kg", 59000,
          "넉넉한 20kg 포장으로 단체 주문에 알맞습니다."),
        P("본량 흑미 1kg", "food-rice", "1kg", 9000,
          "백미에 한 줌 섞으면 밥맛과 빛깔이 좋아집니다."),
        P("본량 오곡 혼합곡 2kg", "food-rice", "2kg", 16000,
          "찹쌀, 흑미, 수수, 기장, 서리태를 고루 섞었습니다."),
    ),
    _farm(
        "samdo-rice", "삼도 우렁이쌀 농원", "이종만", "광주광역시 광산구 삼도로 302",
        P("삼도 우렁이농법쌀 10kg", "food-rice", "10kg", 35000,
          "제초제 대신 우렁이로 김을 맨 논에서 거둔 쌀입니다."),
        P("삼도 우렁이농법쌀 4kg", "food-rice", "4kg", 15000,
          "1~2인 가구에 알맞은 소포장입니다."),
        P("삼도 쌀 선물세트 (2kg×3)", "food-rice", "1세트(6kg)", 29000,
          "백미, 현미, 찹쌀을 2kg씩 담은 선물세트입니다."),
    ),
    _farm(
        "pyeongdong-pear", "평동 신고배 작목반", "최병식", "광주광역시 광산구 평동로 512",
        P("평동 신고배 선물세트 7.5kg (11~13과)", "produce-fruit", "1상자(7.5kg)", 48000,
          "봉지를 씌워 키운 신고배를 크기별로 골라 담았습니다."),
        P("평동 신고배 5kg", "produce-fruit", "1상자(5kg)", 33000,
          "과즙이 많고 단단한 신고배입니다."),
        P("평동 신고배 15kg (가정용)", "produce-fruit", "1상자(15kg)", 62000,
          "모양이 고르지 않을 뿐 맛은 같은 가정용 배입니다."),
        P("평동 배즙 50포", "food-processed", "1박스(110ml×50포)", 25000,
          "평동 신고배만 착즙해 물을 타지 않았습니다."),
    ),
    _farm(
        "eoryong-peach", "어룡 복숭아농원", "윤정희", "광주광역시 광산구 어등대로 631",
        P("어룡 백도 복숭아 4.5kg", "produce-fruit", "1상자(4.5kg)", 38000,
          "향이 진하고 과육이 부드러운 백도입니다."),
        P("어룡 황도 복숭아 4.5kg", "produce-fruit", "1상자(4.5kg)", 36000,
          "단단하고 달콤한 노란 과육의 황도입니다."),
        P("어룡 천도복숭아 2kg", "produce-fruit", "1상자(2kg)", 18000,
          "새콤달콤한 맛의 천도복숭아입니다."),
        P("복숭아 통조림 6캔", "food-processed", "6캔(400g)", 21000,
          "농원에서 직접 졸여 담은 황도 통조림입니다."),
    ),
    _farm(
        "bia-grape", "비아 포도원", "강동훈", "광주광역시 광산구 비아로 77",
        P("비아 캠벨얼리 포도 5kg", "produce-fruit", "1상자(5kg)", 30000,
          "비 가림 하우스에서 익힌 캠벨얼리입니다."),
        P("비아 거봉 포도 2kg", "produce-fruit", "1상자(2kg)", 24000,
          "알이 굵고 당도가 높은 거봉입니다."),
        P("비아 샤인머스캣 2kg", "produce-fruit", "1상자(2~3송이)", 35000,
          "씨 없이 껍질째 먹는 청포도입니다."),
        P("비아 포도즙 50포", "food-processed", "1박스(110ml×50포)", 28000,
          "캠벨얼리를 통째로 달여 짠 포도즙입니다."),
    ),
    _farm(
        "hanam-strawberry", "하남 설향딸기 농장", "서미경", "광주광역시 광산구 하남대로 244",
        P("설향 딸기 1kg", "produce-fruit", "1팩(1kg)", 18000,
          "아침에 딴 딸기를 그날 보냅니다."),
        P("설향 딸기 선물상자 2kg", "produce-fruit", "1상자(2kg)", 34000,
          "한 알씩 받침에 담아 무르지 않게 포장했습니다."),
        P("수제 딸기잼 500g", "food-processed", "1병(500g)", 9000,
          "딸기와 설탕만으로 졸인 잼입니다."),
        P("냉동 딸기 1kg", "produce-fruit", "1봉(1kg)", 12000,
          "꼭지를 따서 급속 냉동한 스무디용 딸기입니다."),
    ),
    _farm(
        "songjeong-minari", "송정 미나리 작목반", "임채원", "광주광역시 광산구 풍영로 150",
        P("송정 미나리 1kg", "produce-vegetable", "1kg", 9000,
          "맑은 물로 키워 향이 진한 미나리입니다."),
        P("송정 돌미나리 500g", "produce-vegetable", "500g", 7000,
          "줄기가 가늘고 향이 강한 돌미나리입니다."),
        P("송정 미나리즙 30포", "food-processed", "1박스(100ml×30포)", 30000,
          "미나리를 생으로 갈아 짠 녹즙입니다."),
    ),
    _farm(
        "gwangsan-greens", "광산 쌈채소 영농법인", "조현우", "광주광역시 광산구 용아로 410",
        P("광산 청상추 1kg", "produce-vegetable", "1kg", 8000,
          "잎이 연하고 쓴맛이 적은 청상추입니다."),
        P("광산 모둠 쌈채소 1kg", "produce-vegetable", "1kg", 12000,
          "상추, 치커리, 케일 등 쌈채소 여덟 가지를 섞었습니다."),
        P("광산 깻잎 500g", "produce-vegetable", "500g", 7000,
          "향긋한 깻잎을 열 묶음으로 나눠 담았습니다."),
    ),
    _farm(
        "pyeongdong-tomato", "평동 완숙토마토 농원", "한상철", "광주광역시 광산구 평동로 880",
        P("평동 완숙토마토 5kg", "produce-vegetable", "1상자(5kg)", 25000,
          "줄기에서 붉게 익힌 뒤 딴 완숙토마토입니다."),
        P("평동 방울토마토 2kg", "produce-vegetable", "1상자(2kg)", 16000,
          "껍질이 얇고 단맛이 좋은 방울토마토입니다."),
        P("평동 대추방울토마토 1.5kg", "produce-vegetable", "1상자(1.5kg)", 15000,
          "아삭하고 당도가 높은 대추형 방울토마토입니다."),
        P("평동 토마토즙 30포", "food-processed", "1박스(110ml×30포)", 27000,
          "완숙토마토만 착즙해 소금을 넣지 않았습니다."),
    ),
    _farm(
        "gwangsan-chrysanthemum", "광산 국화농원", "정순자", "광주광역시 광산구 신창로 95",
        P("소국 화분", "other-flower", "화분 1개", 15000,
          "가을 내내 꽃이 피는 소국 화분입니다."),
        P("대국 분재", "other-flower", "분 1개", 45000,
          "한 줄기에 큰 꽃을 올린 전시용 대국입니다."),
        P("광산 국화차 50g", "specialty-traditional", "1통(50g)", 12000,
          "감국 꽃송이를 덖어 말린 국화차입니다."),
        P("국화 꽃다발", "other-flower", "1다발", 20000,
          "색을 섞은 스프레이 국화 꽃다발입니다."),
    ),
    _farm(
        "gwangsan-rose", "광산 장미원", "노재석", "광주광역시 광산구 사암로 320",
        P("장미 꽃다발 20송이", "other-flower", "1다발(20송이)", 35000,
          "아침에 자른 장미를 물 올림해 보냅니다."),
        P("미니장미 화분", "other-flower", "화분 1개", 18000,
          "베란다에서 키우기 쉬운 미니장미입니다."),
        P("장미 꽃바구니", "other-flower", "1바구니", 55000,
          "장미와 안개꽃으로 꾸민 축하용 꽃바구니입니다."),
        P("프리저브드 장미 상자", "other-flower", "1상자", 42000,
          "물을 주지 않아도 1년 넘게 모양이 유지됩니다."),
    ),
    _farm(
        "gwangsan-bonsai", "광산 분재원", "오세진", "광주광역시 광산구 임방울대로 880",
        P("소나무 분재 (소품)", "other-flower", "분 1개", 80000,
          "10년 넘게 가꾼 해송 소품 분재입니다."),
        P("향나무 분재", "other-flower", "분 1개", 120000,
          "수형을 잡은 향나무 분재입니다."),
        P("다육식물 모둠 5개", "other-flower", "5개", 25000,
          "물을 자주 주지 않아도 되는 다육식물 다섯 가지입니다."),
    ),
    _farm(
        "eomeoni-kimchi", "광산 어머니김치", "문옥순", "광주광역시 광산구 수완로 74",
        P("광산 포기김치 5kg", "food-kimchi", "5kg", 35000,
          "직접 키운 배추를 천일염에 절여 담근 포기김치입니다."),
        P("광산 포기김치 10kg", "food-kimchi", "10kg", 66000,
          "김장철 한 상자로 넉넉한 10kg 포장입니다."),
        P("광산 총각김치 3kg", "food-kimchi", "3kg", 24000,
          "알타리무를 통째로 버무린 총각김치입니다."),
        P("광산 갓김치 3kg", "food-kimchi", "3kg", 27000,
          "톡 쏘는 맛의 돌산갓으로 담갔습니다."),
        P("광산 파김치 2kg", "food-kimchi", "2kg", 20000,
          "쪽파를 멸치젓에 버무린 파김치입니다."),
    ),
    _farm(
        "namdo-jang", "남도 전통장 영농조합", "고정애", "광주광역시 광산구 삼도로 155",
        P("재래 된장 2kg", "food-sauce", "2kg", 24000,
          "국산 콩으로 메주를 쒀 항아리에서 2년 숙성했습니다."),
        P("찹쌀 고추장 1kg", "food-sauce", "1kg", 18000,
          "햇고춧가루와 찹쌀로 담근 고추장입니다."),
        P("조선간장 1.8L", "food-sauce", "1.8L", 16000,
          "된장을 가르고 남은 장물을 달인 국간장입니다."),
        P("청국장 200g×5", "food-sauce", "5개(200g)", 15000,
          "볏짚으로 띄운 청국장을 한 번 끓일 양씩 나눴습니다."),
    ),
    _farm(
        "gwangsan-honey", "광산 양봉원", "배만호", "광주광역시 광산구 본량로 210",
        P("아카시아 꿀 2.4kg", "specialty-traditional", "1병(2.4kg)", 55000,
          "5월에 뜬 아카시아 꿀입니다."),
        P("밤꿀 2.4kg", "specialty-traditional", "1병(2.4kg)", 60000,
          "쌉싸름한 맛이 나는 진한 밤꿀입니다."),
        P("야생화 꿀 1.2kg", "specialty-traditional", "1병(1.2kg)", 30000,
          "여러 들꽃에서 모은 야생화 꿀입니다."),
    ),
    _farm(
        "wando-seaweed", "완도 청정해조 영어조합법인", "김동철",
        "전라남도 완도군 완도읍 해변공원로 112",
        P("완도 곱창김 선물세트", "specialty-laver", "1세트(10봉)", 38000,
          "겨울 한철만 나는 곱창김을 구워 담았습니다."),
        P("완도 자른미역 500g", "specialty-laver", "500g", 15000,
          "먹기 좋게 잘라 말린 완도 미역입니다."),
        P("완도 다시마 1kg", "specialty-laver", "1kg", 18000,
          "육수용으로 두껍게 말린 다시마입니다."),
        P("완도 매생이 400g×5", "specialty-laver", "5개(400g)", 20000,
          "깨끗이 씻어 한 번 끓일 양씩 냉동했습니다."),
        region="전라남도 완도군",
    ),
    _farm(
        "yeosu-anchovy", "여수 바다멸치", "황보연", "전라남도 여수시 돌산읍 돌산로 3051",
        P("볶음용 세멸치 1kg", "specialty-dried-fish", "1kg", 28000,
          "짜지 않게 삶아 말린 잔멸치입니다."),
        P("조림용 소멸치 1kg", "specialty-dried-fish", "1kg", 26000,
          "조림과 볶음에 알맞은 크기의 소멸치입니다."),
        P("국물용 대멸치 1.5kg", "specialty-dried-fish", "1.5kg", 30000,
          "머리와 내장을 손질하기 쉬운 국물용 멸치입니다."),
        P("여수 멸치 선물세트 3종", "specialty-giftset", "1세트", 50000,
          "세멸치, 소멸치, 대멸치를 한 상자에 담았습니다."),
        region="전라남도 여수시",
    ),
    _farm(
        "gwangsan-hangwa", "광산 전통한과", "신영자", "광주광역시 광산구 임곡로 58",
        P("찹쌀 유과 선물세트", "specialty-traditional", "1세트", 35000,
          "찹쌀을 삭히고 튀겨 조청에 묻힌 유과입니다."),
        P("수제 약과 20개입", "specialty-traditional", "20개", 15000,
          "참기름과 꿀로 반죽해 구운 약과입니다."),
        P("한과 종합 선물세트", "specialty-giftset", "1세트", 48000,
          "유과, 약과, 정과를 함께 담은 명절 세트입니다."),
        P("쌀강정 500g", "specialty-traditional", "500g", 12000,
          "광산 쌀을 튀겨 조청으로 굳힌 강정입니다."),
    ),
)

FACTORY_SUPPLIERS: tuple[DemoSupplier, ...] = (
    _factory(
        "hanam-steel", "하남스텐 주방", "이재훈", "광주광역시 광산구 하남산단6번로 45",
        P("스테인리스 냄비 3종 세트", "household-kitchen", "1세트(3종)", 65000,
          "통삼중 바닥으로 열이 고르게 퍼지는 냄비 세트입니다."),
        P("통삼중 프라이팬 28cm", "household-kitchen", "1개", 42000,
          "코팅이 벗겨질 걱정 없는 스테인리스 프라이팬입니다."),
        P("스테인리스 밀폐용기 5종", "household-storage", "1세트(5종)", 39000,
          "냄새가 배지 않는 스테인리스 밀폐용기입니다."),
        P("스테인리스 채반·볼 세트", "household-kitchen", "1세트(6종)", 25000,
          "크기별 채반과 볼을 겹쳐 보관할 수 있습니다."),
    ),
    _factory(
        "gwangsan-knife", "광산 칼·가위", "장성호", "광주광역시 광산구 하남산단8번로 120",
        P("주방칼 3종 세트", "household-kitchen", "1세트(3종)", 45000,
          "식도, 과도, 빵칼을 한 벌로 담았습니다."),
        P("다용도 주방가위", "household-kitchen", "1개", 12000,
          "분리해서 씻을 수 있는 주방가위입니다."),
        P("원터치 칼갈이", "household-kitchen", "1개", 15000,
          "당기기만 하면 날이 서는 세라믹 칼갈이입니다."),
    ),
    _factory(
        "pyeongdong-detergent", "평동 생활화학", "김태식", "광주광역시 광산구 평동산단로 210",
        P("주방세제 1L×3", "household-cleaning", "3개(1L)", 12000,
          "1종 세척제 기준으로 만든 주방세제입니다."),
        P("액체 세탁세제 3L", "household-cleaning", "1통(3L)", 15000,
          "찬물에도 잘 녹는 중성 세탁세제입니다."),
        P("섬유유연제 2.5L", "household-cleaning", "1통(2.5L)", 11000,
          "은은한 면 향의 섬유유연제입니다."),
        P("욕실 세정제 750ml×2", "household-cleaning", "2개(750ml)", 9000,
          "물때와 곰팡이를 닦아 내는 욕실 세정제입니다."),
    ),
    _factory(
        "sochon-soap", "소촌 자연비누", "유은주", "광주광역시 광산구 소촌로 93",
        P("쌀겨 천연비누 100g×5", "household-cleaning", "5개(100g)", 15000,
          "광산 쌀겨를 넣어 저온 숙성한 비누입니다."),
        P("녹차 세안비누 100g×3", "household-cleaning", "3개(100g)", 12000,
          "녹차 가루를 넣은 세안용 비누입니다."),
        P("빨래비누 10개입", "household-cleaning", "10개", 8000,
          "찌든 때에 문질러 쓰는 빨래비누입니다."),
    ),
    _factory(
        "gwangsan-towel", "광산타올", "한동석", "광주광역시 광산구 하남산단9번로 33",
        P("호텔수건 40수 10장", "household-textile", "10장", 32000,
          "40수 면사로 짠 도톰한 수건입니다."),
        P("답례품 수건 2장 세트", "household-textile", "1세트(2장)", 7000,
          "문구를 자수로 넣을 수 있는 답례용 수건입니다."),
        P("대형 목욕타월 2장", "household-textile", "2장", 25000,
          "몸 전체를 감싸는 큰 목욕타월입니다."),
        P("면 손수건 10장", "household-textile", "10장", 15000,
          "삶아 써도 늘어나지 않는 면 손수건입니다."),
    ),
    _factory(
        "hanam-container", "하남 밀폐용기", "곽민철", "광주광역시 광산구 하남산단4번로 77",
        P("사각 밀폐용기 10종 세트", "household-storage", "1세트(10종)", 29000,
          "전자레인지와 식기세척기에 쓸 수 있는 밀폐용기입니다."),
        P("김치통 8L 2개", "household-storage", "2개(8L)", 21000,
          "냄새가 새지 않는 4면 잠금 김치통입니다."),
        P("냉동밥 보관용기 12개", "household-storage", "12개", 15000,
          "밥 한 공기씩 얼려 데우기 좋은 용기입니다."),
        P("원형 소형 밀폐용기 20개", "household-storage", "20개", 18000,
          "양념과 반찬을 나눠 담는 작은 용기입니다."),
    ),
    _factory(
        "pyeongdong-plastic", "평동 플라스틱", "주영길", "광주광역시 광산구 평동산단로 155",
        P("다용도 수납바구니 3개", "household-storage", "3개", 12000,
          "손잡이가 달린 튼튼한 수납바구니입니다."),
        P("페달 휴지통 20L", "household-cleaning", "1개", 18000,
          "발로 열고 조용히 닫히는 휴지통입니다."),
        P("빨래바구니 2개", "household-storage", "2개", 11000,
          "통풍 구멍이 있는 빨래바구니입니다."),
    ),
    _factory(
        "hanam-led", "하남 LED조명", "백승우", "광주광역시 광산구 하남산단2번로 68",
        P("LED 방등 50W", "household-lighting", "1개", 45000,
          "깜박임 없는 LED 방등으로 설치가 쉽습니다."),
        P("LED 거실등 100W", "household-lighting", "1개", 89000,
          "밝기와 색온도를 리모컨으로 바꿀 수 있습니다."),
        P("LED 스탠드", "household-lighting", "1개", 35000,
          "밝기를 다섯 단계로 조절하는 책상용 스탠드입니다."),
        P("LED 현관 센서등", "household-lighting", "1개", 19000,
          "사람이 지나가면 켜지는 현관용 센서등입니다."),
    ),
    _factory(
        "gwangsan-electric", "광산전기", "심재경", "광주광역시 광산구 하남산단3번로 21",
        P("개별 스위치 멀티탭 4구 3m", "household-lighting", "1개", 14000,
          "구마다 스위치가 달린 멀티탭입니다."),
        P("과부하 차단 멀티탭 6구 5m", "household-lighting", "1개", 22000,
          "과부하가 걸리면 전원을 끊는 멀티탭입니다."),
        P("전선 릴 30m", "household-lighting", "1개", 39000,
          "야외 작업에 쓰는 30m 전선 릴입니다."),
    ),
    _factory(
        "pyeongdong-tools", "평동 공구", "염동수", "광주광역시 광산구 평동산단로 330",
        P("가정용 공구 세트 32종", "household-tools", "1세트(32종)", 45000,
          "망치, 드라이버, 펜치 등 집안 수리에 필요한 공구를 담았습니다."),
        P("드라이버 세트 12종", "household-tools", "1세트(12종)", 15000,
          "자석 팁이 달린 정밀 드라이버 세트입니다."),
        P("몽키스패너 3종 세트", "household-tools", "1세트(3종)", 21000,
          "크롬바나듐강으로 만든 몽키스패너입니다."),
        P("충전식 전동드릴 12V", "household-tools", "1개", 79000,
          "배터리 두 개가 들어 있는 가정용 전동드릴입니다."),
    ),
    _factory(
        "hanam-hardware", "하남 철물", "나기현", "광주광역시 광산구 하남산단5번로 90",
        P("선반 브래킷 4개입", "household-tools", "4개", 9000,
          "벽 선반을 받치는 분체도장 브래킷입니다."),
        P("스테인리스 경첩 10개입", "household-tools", "10개", 12000,
          "녹슬지 않는 스테인리스 문 경첩입니다."),
        P("접이식 알루미늄 사다리 3단", "household-tools", "1개", 58000,
          "접으면 10cm 두께로 보관할 수 있는 사다리입니다."),
    ),
    _factory(
        "sochon-gloves", "소촌 장갑", "방수진", "광주광역시 광산구 소촌로 151",
        P("주방용 고무장갑 10켤레", "household-cleaning", "10켤레", 12000,
          "손목이 긴 천연고무 주방장갑입니다."),
        P("위생 니트릴장갑 100매", "household-cleaning", "1상자(100매)", 9000,
          "조리와 청소에 쓰는 일회용 장갑입니다."),
        P("코팅 작업장갑 20켤레", "household-tools", "20켤레", 15000,
          "손바닥을 고무로 코팅해 미끄럽지 않습니다."),
    ),
    _factory(
        "gwangsan-scrubber", "광산 수세미", "전미란", "광주광역시 광산구 사암로 401",
        P("천연 수세미 10개입", "household-cleaning", "10개", 8000,
          "수세미 열매를 말려 만든 설거지용 수세미입니다."),
        P("극세사 행주 10장", "household-cleaning", "10장", 9000,
          "물기를 잘 흡수하고 빨리 마르는 행주입니다."),
        P("다용도 청소포 50매", "household-cleaning", "50매", 10000,
          "밀대에 끼워 쓰는 정전기 청소포입니다."),
    ),
    _factory(
        "hanam-glass", "하남 유리", "구본석", "광주광역시 광산구 하남산단7번로 15",
        P("내열유리 밀폐용기 6종", "household-storage", "1세트(6종)", 34000,
          "오븐에 넣어도 되는 내열유리 용기입니다."),
        P("유리 물병 1L 2개", "household-kitchen", "2개(1L)", 14000,
          "냉장고 문에 들어가는 날씬한 물병입니다."),
        P("유리 양념병 6개", "household-kitchen", "6개", 16000,
          "한 손으로 여닫는 양념병 세트입니다."),
    ),
    _factory(
        "pyeongdong-wood", "평동 원목공방", "고재민", "광주광역시 광산구 평동산단로 402",
        P("편백 원목도마 (대)", "household-kitchen", "1개", 35000,
          "편백나무 한 판으로 만든 도마입니다."),
        P("항균 도마 3종 세트", "household-kitchen", "1세트(3종)", 25000,
          "고기, 채소, 과일용으로 색을 나눈 도마입니다."),
        P("원목 수저 세트 5벌", "household-kitchen", "5벌", 18000,
          "옻칠로 마감한 원목 수저입니다."),
    ),
    _factory(
        "gwangsan-fragrance", "광산 향기", "차은영", "광주광역시 광산구 하남대로 98",
        P("편백 탈취제 500ml", "household-cleaning", "1병(500ml)", 12000,
          "편백 오일로 냄새를 잡는 뿌리는 탈취제입니다."),
        P("차량용 방향제 3개", "household-cleaning", "3개", 10000,
          "송풍구에 끼우는 차량용 방향제입니다."),
        P("디퓨저 200ml", "household-cleaning", "1병(200ml)", 22000,
          "리드 스틱이 함께 들어 있는 실내용 디퓨저입니다."),
    ),
    _factory(
        "sochon-bedding", "소촌 침구", "신동환", "광주광역시 광산구 소촌로 210",
        P("순면 차렵이불 (퀸)", "household-textile", "1채", 89000,
          "60수 순면 원단으로 만든 사계절 이불입니다."),
        P("경추 베개 2개", "household-textile", "2개", 39000,
          "목을 받쳐 주는 메모리폼 베개입니다."),
        P("인견 여름 패드 (퀸)", "household-textile", "1장", 45000,
          "시원한 촉감의 인견 패드입니다."),
        P("극세사 담요", "household-textile", "1장", 29000,
          "가볍고 따뜻한 극세사 담요입니다."),
    ),
    _factory(
        "hanam-umbrella", "하남 우산", "양현식", "광주광역시 광산구 하남산단1번로 52",
        P("3단 자동우산", "other-craft", "1개", 15000,
          "버튼 하나로 펴고 접는 3단 우산입니다."),
        P("16살 장우산", "other-craft", "1개", 18000,
          "살이 열여섯 개라 바람에 강한 장우산입니다."),
        P("어린이 투명창 우산", "other-craft", "1개", 10000,
          "앞이 보이는 투명창을 단 어린이 우산입니다."),
    ),
    _factory(
        "nonggong-food", "광산 농공식품", "강희정", "광주광역시 광산구 삼도로 410",
        P("떡국떡 1kg×3", "food-processed", "3개(1kg)", 15000,
          "광산 쌀로 뽑은 떡국떡입니다."),
        P("가래떡 2kg", "food-processed", "2kg", 14000,
          "구워 먹어도 좋은 말랑한 가래떡입니다."),
        P("누룽지 1kg", "food-processed", "1kg", 13000,
          "가마솥에 눌려 만든 누룽지입니다."),
        P("쌀 조청 1kg", "food-processed", "1병(1kg)", 16000,
          "쌀과 엿기름만으로 고아 만든 조청입니다."),
    ),
    _factory(
        "gwangsan-oil", "광산 참기름 방앗간", "윤복례", "광주광역시 광산구 송정로 118",
        P("국산 참기름 350ml", "food-sauce", "1병(350ml)", 22000,
          "국산 참깨를 저온에서 볶아 짠 참기름입니다."),
        P("국산 들기름 350ml", "food-sauce", "1병(350ml)", 18000,
          "국산 들깨를 생으로 짠 들기름입니다."),
        P("볶음 참깨 500g", "food-sauce", "500g", 15000,
          "씻어서 볶은 국산 참깨입니다."),
    ),
    _factory(
        "gwangsan-brewery", "광산 전통주 양조장", "최동진", "광주광역시 광산구 임곡로 301",
        P("생막걸리 750ml 6병", "specialty-traditional", "6병(750ml)", 15000,
          "광산 쌀로 빚어 살균하지 않은 생막걸리입니다."),
        P("쌀 약주 500ml 2병", "specialty-traditional", "2병(500ml)", 24000,
          "100일 숙성한 맑은 약주입니다."),
        P("막걸리 선물세트", "specialty-giftset", "1세트", 35000,
          "생막걸리와 약주, 전용 잔을 함께 담았습니다."),
    ),
    _factory(
        "pyeongdong-bakery", "평동 제과", "이정민", "광주광역시 광산구 평동산단로 260",
        P("쌀쿠키 선물세트", "food-processed", "1세트", 25000,
          "밀가루 대신 쌀가루로 구운 쿠키입니다."),
        P("옛날 전병 600g", "food-processed", "600g", 9000,
          "땅콩과 깨를 넣어 얇게 구운 전병입니다."),
        P("수제 양갱 10개입", "food-processed", "10개", 15000,
          "국산 팥을 쑤어 굳힌 양갱입니다."),
    ),
    _factory(
        "hanam-stationery", "하남 문구", "박성하", "광주광역시 광산구 하남산단10번로 20",
        P("스프링 노트 10권", "other-stationery", "10권", 12000,
          "재생지로 만든 A5 스프링 노트입니다."),
        P("사무용 파일 박스 5개", "other-stationery", "5개", 15000,
          "서류를 세워 보관하는 파일 박스입니다."),
        P("볼펜 세트 50자루", "other-stationery", "50자루", 10000,
          "잉크가 부드럽게 나오는 0.7mm 볼펜입니다."),
    ),
    _factory(
        "gwangsan-ceramic", "광산 도예공방", "정다운", "광주광역시 광산구 용아로 512",
        P("분청사기 찻잔 세트", "other-craft", "1세트(5인)", 45000,
          "분청 기법으로 빚은 찻잔 다섯 개입니다."),
        P("생활자기 반상기 (2인)", "other-craft", "1세트(2인)", 65000,
          "밥그릇, 국그릇, 접시를 2인분으로 담았습니다."),
        P("옹기 김치항아리 5L", "household-kitchen", "1개(5L)", 38000,
          "숨 쉬는 옹기로 김치 맛을 오래 지킵니다."),
    ),
    _factory(
        "sochon-bag", "소촌 가방", "유성민", "광주광역시 광산구 소촌로 62",
        P("면 에코백", "other-craft", "1개", 15000,
          "두꺼운 캔버스 원단으로 만든 장바구니 가방입니다."),
        P("보냉 장바구니", "other-craft", "1개", 12000,
          "안쪽에 보냉재를 댄 접이식 장바구니입니다."),
        P("방수 여행 파우치 3종", "other-craft", "1세트(3종)", 14000,
          "크기별로 나눈 방수 파우치입니다."),
    ),
    _factory(
        "damyang-bamboo", "담양 죽공예", "송기태", "전라남도 담양군 담양읍 죽향대로 1180",
        P("대나무 소쿠리 3종", "household-kitchen", "1세트(3종)", 25000,
          "담양 대나무를 손으로 엮은 소쿠리입니다."),
        P("대나무 돗자리 (2인)", "other-craft", "1장", 49000,
          "여름에 시원한 대나무 돗자리입니다."),
        P("대나무 칫솔 10개", "other-craft", "10개", 9000,
          "손잡이를 대나무로 만든 칫솔입니다."),
        region="전라남도 담양군",
    ),
    _factory(
        "bonchon-cleaning", "본촌 청소용품", "문재혁", "광주광역시 북구 설죽로 231",
        P("회전 물걸레 청소기 세트", "household-cleaning", "1세트", 35000,
          "발로 밟아 탈수하는 회전 물걸레 세트입니다."),
        P("밀대 걸레 리필 10매", "household-cleaning", "10매", 12000,
          "빨아 쓰는 극세사 밀대 걸레입니다."),
        P("창문 청소 도구 세트", "household-cleaning", "1세트", 15000,
          "자석으로 창문 안팎을 함께 닦습니다."),
        region="광주광역시 북구",
    ),
    _factory(
        "hanam-storage", "하남 수납", "오정란", "광주광역시 광산구 하남산단8번로 240",
        P("서랍형 수납장 3단", "household-storage", "1개", 45000,
          "바퀴가 달려 옮기기 쉬운 3단 수납장입니다."),
        P("논슬립 옷걸이 50개", "household-storage", "50개", 12000,
          "옷이 미끄러지지 않는 얇은 옷걸이입니다."),
        P("이불 압축팩 5매", "household-storage", "5매", 15000,
          "이불 부피를 줄여 보관하는 압축팩입니다."),
    ),
)

SUPPLIERS: tuple[DemoSupplier, ...] = FARM_SUPPLIERS + FACTORY_SUPPLIERS

# -- derived supplier details ---------------------------------------------------------

_BUSINESS_NO_WEIGHTS = (1, 3, 7, 1, 3, 7, 1, 3, 5)


def business_number_check_digit(first_nine: str) -> int:
    """Compute the check digit of a 사업자등록번호 from its first nine digits."""
    if len(first_nine) != 9 or not first_nine.isdigit():
        raise ValueError(f"expected the first 9 digits of a business number, got {first_nine!r}")
    digits = [int(c) for c in first_nine]
    total = sum(d * w for d, w in zip(digits, _BUSINESS_NO_WEIGHTS))
    total += digits[8] * 5 // 10
    return (10 - total % 10) % 10


def is_valid_business_number(number: str) -> bool:
    """Return whether `number` is ten digits whose last digit is the correct check digit."""
    if len(number) != 10 or not number.isdigit():
        return False
    return business_number_check_digit(number[:9]) == int(number[9])


def business_number(index: int) -> str:
    """Return the invented business number of supplier `index`, unique within the demo."""
    # 3-digit office code, 2-digit type code (01-79 sole proprietor, 81 corporation)
    # and a 4-digit serial, which alone keeps the 48 numbers distinct.
    supplier = SUPPLIERS[index]
    type_code = 81 if "법인" in supplier.name else index % 79 + 1
    first_nine = f"409{type_code:02d}{(1000 + index * 173) % 10000:04d}"
    return first_nine + str(business_number_check_digit(first_nine))


def supplier_phone(index: int, supplier: DemoSupplier) -> str:
    """Return the supplier's phone number as digits only, e.g. 0629501234."""
    area = "062" if supplier.region.startswith("광주광역시") else "061"
    exchange = f"9{50 + index:02d}" if supplier.is_local else f"5{10 + index:02d}"
    return f"{area}{exchange}{(1234 + index * 389) % 10000:04d}"


def supplier_email(supplier: DemoSupplier) -> str:
    return f"contact@{supplier.key}.example"


# (bank, account number pattern where each 9 is one random digit)
_BANK_FORMATS: tuple[tuple[str, str], ...] = (
    ("NH농협은행", "351-9999-9999-99"),
    ("광주은행", "1107-999-999999"),
    ("KB국민은행", "999999-99-999999"),
    ("신한은행", "110-999-999999"),
    ("우리은행", "1002-999-999999"),
    ("IBK기업은행", "999-999999-99-999"),
)


def supplier_bank(index: int, supplier: DemoSupplier) -> tuple[str, str]:
    """Return an invented (bank name, account number) for the supplier."""
    bank_name, pattern = _BANK_FORMATS[index % len(_BANK_FORMATS)]
    # Python 3.2+ hashes a str seed with SHA-512, so the digits do not depend on PYTHONHASHSEED.
    rng = random.Random(f"jangteo-demo-bank-{supplier.key}")
    account = "".join(str(rng.randrange(10)) if c == "9" else c for c in pattern)
    return bank_name, account


# -- lots -----------------------------------------------------------------------------

MINUTE_S = 60
HOUR_S = 3600


@dataclass(frozen=True)
class DemoLot:
    supplier_key: str
    product_name: str
    title: str
    start_offset_s: int  # start_at relative to the load time; negative means already open
    end_offset_s: int
    start_price_won: int
    reserve_won: int | None = None
    buy_now_won: int | None = None
    hard_cap_offset_s: int | None = None
    quantity: int = 1


LOTS: tuple[DemoLot, ...] = (
    DemoLot("gwangsan-gim", "광산 햇김 선물세트 10호",
            "[경매] 광산 햇김 선물세트 10호 (20봉)",
            -30 * MINUTE_S, 1 * HOUR_S, 20000),
    DemoLot("gwangsan-gim", "국물용 멸치 선물세트",
            "[경매] 국물용 멸치 선물세트 1.5kg (최저낙찰가 있음)",
            -20 * MINUTE_S, 2 * HOUR_S, 25000, reserve_won=38000),
    DemoLot("gwangsan-gim", "김·멸치 혼합 선물세트",
            "[경매] 김·멸치 혼합 선물세트 3세트 묶음",
            -10 * MINUTE_S, 90 * MINUTE_S, 90000, quantity=3),
    DemoLot("pyeongdong-pear", "평동 신고배 선물세트 7.5kg (11~13과)",
            "[경매] 평동 신고배 7.5kg 선물세트 (즉시구매 가능)",
            -15 * MINUTE_S, 3 * HOUR_S, 35000, buy_now_won=52000),
    DemoLot("hanam-strawberry", "설향 딸기 선물상자 2kg",
            "[경매] 하남 설향딸기 선물상자 2kg (마감 임박)",
            -25 * MINUTE_S, 4 * MINUTE_S, 15000),
    DemoLot("hanam-led", "LED 거실등 100W",
            "[경매] 하남 LED 거실등 100W (마감 임박)",
            -25 * MINUTE_S, 5 * MINUTE_S, 50000),
    DemoLot("imgok-rice", "임곡 황룡강쌀 10kg",
            "[경매] 임곡 황룡강쌀 10kg 햅쌀 (마감 임박)",
            -25 * MINUTE_S, 6 * MINUTE_S, 22000),
    DemoLot("gwangsan-chrysanthemum", "대국 분재",
            "[경매] 광산 대국 분재 (연장 상한 있음)",
            -5 * MINUTE_S, 90 * MINUTE_S, 30000, hard_cap_offset_s=100 * MINUTE_S),
    DemoLot("hanam-steel", "스테인리스 냄비 3종 세트",
            "[경매] 하남스텐 통삼중 냄비 3종 세트",
            -40 * MINUTE_S, 150 * MINUTE_S, 40000),
    DemoLot("gwangsan-hangwa", "한과 종합 선물세트",
            "[경매] 광산 전통한과 종합 선물세트 2세트",
            -5 * MINUTE_S, 3 * HOUR_S, 60000, quantity=2),
    DemoLot("eomeoni-kimchi", "광산 포기김치 10kg",
            "[경매] 광산 어머니김치 포기김치 10kg",
            10 * MINUTE_S, 70 * MINUTE_S, 45000),
    DemoLot("gwangsan-towel", "호텔수건 40수 10장",
            "[경매] 광산타올 호텔수건 40수 10장",
            10 * MINUTE_S, 2 * HOUR_S, 20000),
)


# -- group-buy campaigns ----------------------------------------------------------------

# Demo member accounts that pledge in the campaigns and join the complex order, as
# (e-mail, display name). They sign in with `NEIGHBOUR_PASSWORD`.
NEIGHBOURS: tuple[tuple[str, str], ...] = (
    ("member3@jangteo.example", "최지훈"),
    ("member4@jangteo.example", "정수빈"),
    ("member5@jangteo.example", "강예린"),
    ("member6@jangteo.example", "윤도현"),
    ("member7@jangteo.example", "장하은"),
    ("member8@jangteo.example", "임재석"),
    ("member9@jangteo.example", "한소희"),
    ("member10@jangteo.example", "오민준"),
)
NEIGHBOUR_PASSWORD = "member1234!"

DELIVERY_TERMS = "마감 후 공동구매가 성사되면 3일 안에 택배로 보내 드립니다. 배송비는 무료입니다."


@dataclass(frozen=True)
class DemoCampaign:
    """A running group buy; `pledges` are (member e-mail, member's new total) in ledger order.

    A total of 0 cancels the member's pledge. The loader replays the pledges through
    the group-buy rules, so a pledge the rules would reject fails the load.
    """

    supplier_key: str
    product_name: str
    title: str
    unit_label: str
    list_price_won: int
    tiers: tuple[tuple[int, int], ...]
    min_total_units: int
    stock_cap_units: int
    per_member_limit: int
    start_offset_s: int  # start_at relative to the load time; negative means already open
    deadline_offset_s: int
    pledges: tuple[tuple[str, int], ...]
    min_buyers: int | None = None
    close_when_sold_out: bool = False
    fulfilment: str = "delivery"
    fulfilment_terms: str = DELIVERY_TERMS
    payment_timing: str = "after_success"
    # Up-front campaigns only: members who pay by bank transfer and whose deposit is
    # still awaited. Every other pledger there has paid by card.
    awaiting_deposit: tuple[str, ...] = ()


def _neighbour(number: int) -> str:
    """Return the e-mail of demo member `number` (3 to 10)."""
    return f"member{number}@jangteo.example"


CAMPAIGNS: tuple[DemoCampaign, ...] = (
    # Two units short of the 30-unit tier: one pledge tips it.
    DemoCampaign(
        "gwangsan-gim", "광산 햇김 선물세트 10호",
        "[공동구매] 광산 햇김 선물세트 10호 (20봉)", "1세트(20봉)",
        30000, ((10, 27000), (30, 25000), (50, 23000)),
        min_total_units=10, stock_cap_units=80, per_member_limit=5,
        start_offset_s=-26 * HOUR_S, deadline_offset_s=3 * HOUR_S,
        pledges=(
            (_neighbour(3), 5), (_neighbour(4), 4), (_neighbour(5), 3), (_neighbour(6), 2),
            (_neighbour(7), 5), (_neighbour(4), 2), (_neighbour(8), 3), (_neighbour(9), 4),
            (_neighbour(6), 0), (_neighbour(10), 2), (_neighbour(5), 5), (_neighbour(6), 2),
        ),
    ),
    # Closes minutes after the load, past its minimum, so the worker's close makes orders.
    DemoCampaign(
        "eomeoni-kimchi", "광산 포기김치 5kg",
        "[공동구매] 광산 어머니김치 포기김치 5kg (마감 임박)", "5kg",
        35000, ((10, 32000), (20, 30000), (30, 28000)),
        min_total_units=10, min_buyers=5, stock_cap_units=40, per_member_limit=3,
        start_offset_s=-2 * 24 * HOUR_S, deadline_offset_s=5 * MINUTE_S,
        pledges=(
            (_neighbour(3), 3), (_neighbour(5), 2), (_neighbour(7), 3), (_neighbour(8), 1),
            (_neighbour(9), 3), (_neighbour(10), 2), (_neighbour(8), 2),
        ),
    ),
    # Paid up front at the "at most" price (the tier at the minimum), still below the minimum.
    DemoCampaign(
        "imgok-rice", "임곡 황룡강쌀 10kg",
        "[공동구매] 임곡 황룡강쌀 10kg 햅쌀 (선결제)", "10kg",
        32000, ((20, 29000), (40, 27000), (60, 25000)),
        min_total_units=20, stock_cap_units=100, per_member_limit=4,
        start_offset_s=-6 * HOUR_S, deadline_offset_s=2 * 24 * HOUR_S,
        pledges=(
            (_neighbour(4), 4), (_neighbour(6), 3), (_neighbour(8), 2), (_neighbour(10), 4),
            (_neighbour(3), 2), (_neighbour(9), 2),
        ),
        payment_timing="up_front",
        awaiting_deposit=(_neighbour(9),),
    ),
    # Closes as soon as the last 6 boxes are pledged.
    DemoCampaign(
        "pyeongdong-pear", "평동 신고배 선물세트 7.5kg (11~13과)",
        "[공동구매] 평동 신고배 7.5kg 선물세트 (완판 시 조기 마감)", "1상자(7.5kg)",
        48000, ((10, 45000), (20, 43000), (30, 41000)),
        min_total_units=10, stock_cap_units=30, per_member_limit=4,
        start_offset_s=-20 * HOUR_S, deadline_offset_s=8 * HOUR_S,
        pledges=(
            (_neighbour(3), 4), (_neighbour(4), 3), (_neighbour(5), 4), (_neighbour(6), 2),
            (_neighbour(7), 3), (_neighbour(8), 4), (_neighbour(9), 2), (_neighbour(10), 2),
        ),
        close_when_sold_out=True,
        fulfilment="pickup",
        fulfilment_terms="마감 다음 날 오후 2시부터 6시까지 평동 신고배 작목반 선별장(평동로 512)에서 찾아가세요.",
    ),
)


# -- the apartment-complex order ----------------------------------------------------------

COORDINATOR_EMAIL = "coordinator@jangteo.example"


@dataclass(frozen=True)
class DemoComplexItem:
    supplier_key: str
    product_name: str
    per_household_limit: int


@dataclass(frozen=True)
class DemoParticipant:
    """One account's order in the complex order; `lines` are (product name, quantity)."""

    email: str
    building: str  # 동
    unit: str  # 호
    phone: str  # digits only
    lines: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class DemoComplexOrder:
    complex_name: str
    road_address: str
    pickup_point: str
    delivery_slot: str
    closes_offset_s: int  # closes_at relative to the load time
    delivery_days_after_close: int  # delivery date in Korea time, counted from the closing day
    reward_bp: int
    items: tuple[DemoComplexItem, ...]
    participants: tuple[DemoParticipant, ...]


# The complex and its address are invented.
COMPLEX_ORDER = DemoComplexOrder(
    complex_name="수완 햇살마루 3단지",
    road_address="광주광역시 광산구 장신로 137",
    pickup_point="관리사무소 앞",
    delivery_slot="10:00-12:00",
    closes_offset_s=4 * HOUR_S,
    delivery_days_after_close=1,
    reward_bp=100,
    items=(
        DemoComplexItem("eomeoni-kimchi", "광산 포기김치 5kg", 2),
        DemoComplexItem("imgok-rice", "임곡 황룡강쌀 10kg", 2),
        DemoComplexItem("pyeongdong-tomato", "평동 방울토마토 2kg", 3),
        DemoComplexItem("hanam-strawberry", "설향 딸기 1kg", 4),
        DemoComplexItem("namdo-jang", "재래 된장 2kg", 1),
        DemoComplexItem("gwangsan-gim", "도시락김 72봉", 2),
    ),
    participants=(
        DemoParticipant(_neighbour(3), "101", "1203", "01031245678",
                        (("광산 포기김치 5kg", 1), ("임곡 황룡강쌀 10kg", 1), ("도시락김 72봉", 1))),
        DemoParticipant(_neighbour(4), "101", "704", "01042871903",
                        (("평동 방울토마토 2kg", 2), ("설향 딸기 1kg", 2))),
        DemoParticipant(_neighbour(5), "102", "1502", "01057302816",
                        (("임곡 황룡강쌀 10kg", 2), ("재래 된장 2kg", 1))),
        DemoParticipant(_neighbour(6), "103", "302", "01068194025",
                        (("광산 포기김치 5kg", 2), ("설향 딸기 1kg", 1), ("도시락김 72봉", 2))),
        # Two accounts of one household: together they use the whole limit of 방울토마토
        # (3) and 포기김치 (2).
        DemoParticipant(_neighbour(7), "104", "901", "01073920461",
                        (("평동 방울토마토 2kg", 2), ("광산 포기김치 5kg", 1))),
        DemoParticipant(_neighbour(8), "104", "901", "01084016372",
                        (("평동 방울토마토 2kg", 1), ("설향 딸기 1kg", 3), ("광산 포기김치 5kg", 1))),
        DemoParticipant(COORDINATOR_EMAIL, "105", "1101", "01095263187",
                        (("임곡 황룡강쌀 10kg", 1), ("재래 된장 2kg", 1), ("설향 딸기 1kg", 2))),
    ),
)
