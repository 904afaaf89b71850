"""Replies of a real mongod that SecantusDB does not give, as the MongoDB manual documents them:
structured log lines (getLog), $queryStats documents, currentOp entries. Test data for the
parsing and judging layer."""

from __future__ import annotations

import datetime as dt

from bson import Decimal128, Int64, Timestamp

# getLog: "global" on mongod 4.4+: one JSON document per line (the manual's "Log Messages"
# page: the slow aggregation on stocks.trades; then find, update and non-slow lines).
GETLOG = {
    "totalLinesWritten": 5210,
    "log": [
        '{"t":{"$date":"2020-05-20T19:18:40.604+00:00"},"s":"I","c":"NETWORK","id":22943,"ctx":"listener",'
        '"msg":"Connection accepted","attr":{"remote":"127.0.0.1:53610","connectionId":281,"connectionCount":3}}',
        '{"t":{"$date":"2020-05-20T20:10:08.731+00:00"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn281",'
        '"msg":"Slow query","attr":{"type":"command","ns":"stocks.trades","appName":"MongoDB Shell","command":'
        '{"aggregate":"trades","pipeline":[{"$match":{"ticker":"MDB"}},{"$sort":{"price":-1}}],"allowDiskUse":true,'
        '"cursor":{},"lsid":{"id":{"$uuid":"fa658f9e-9cd6-42d4-b1c8-c9160fabf2a2"}},"$db":"stocks"},'
        '"planSummary":"COLLSCAN","cursorid":1912190691485054730,"keysExamined":0,"docsExamined":1000001,'
        '"hasSortStage":true,"usedDisk":true,"numYields":1002,"nreturned":101,"reslen":17738,'
        '"locks":{"Global":{"acquireCount":{"r":1022}}},"protocol":"op_msg","durationMillis":22427}}',
        '{"t":{"$date":"2020-05-20T20:11:01.002+00:00"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn290",'
        '"msg":"Slow query","attr":{"type":"command","ns":"stocks.trades","appName":"api","command":'
        '{"find":"trades","filter":{"ticker":"AAPL"},"sort":{"price":-1},"limit":20,"$db":"stocks"},'
        '"planSummary":"COLLSCAN","keysExamined":0,"docsExamined":1000001,"hasSortStage":true,"nreturned":20,'
        '"queryShapeHash":"B2F5A5E0C1D4","durationMillis":812}}',
        '{"t":{"$date":"2020-05-20T20:12:44.120+00:00"},"s":"I","c":"WRITE","id":51803,"ctx":"conn290",'
        '"msg":"Slow query","attr":{"type":"update","ns":"stocks.orders","appName":"api","command":'
        '{"q":{"accountId":{"$oid":"5ec5a6b2f1b0c8a1d2e3f4a5"},"state":"open"},"u":{"$set":{"state":"closed"}},'
        '"multi":true,"upsert":false},"planSummary":"COLLSCAN","keysExamined":0,"docsExamined":250000,'
        '"nMatched":3,"nModified":3,"durationMillis":301}}',
        '{"t":{"$date":"2020-05-20T20:13:00.000+00:00"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn291",'
        '"msg":"Slow query","attr":{"type":"command","ns":"stocks.trades","appName":"dbvitals","command":'
        '{"aggregate":"trades","pipeline":[{"$sample":{"size":200}}],"$db":"stocks"},"planSummary":"COLLSCAN",'
        '"docsExamined":1000001,"nreturned":200,"durationMillis":640}}',
        '{"t":{"$date":"2020-05-20T20:14:00.000+00:00"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn292",'
        '"msg":"Slow query","attr":{"type":"command","ns":"stocks.trades","command":{"find":"trades",'
        '"filter":{"note":"xxxxxxxx"}},"truncated":{"command":{"filter":{"note":{"type":"string","size":40000}}}},'
        '"durationMillis":150}}',
    ],
    "ok": 1.0,
}

# A SecantusDB reply: plain-text lines, no structured slow-query lines.
GETLOG_PLAIN = {"totalLinesWritten": 2, "log": ["2026-12-02T04:22:20.603585+00:00 I NETWORK connection accepted"], "ok": 1.0}

# $queryStats on the admin database (the manual's untransformed example, plus the metrics a
# 7.0.12+/8.0 server adds: keysExamined, docsExamined, hasSortStage).
QUERY_STATS = [
    {
        "key": {
            "queryShape": {"cmdNs": {"db": "test", "coll": "products"}, "command": "find",
                           "filter": {"item": {"$eq": "?string"}}},
            "client": {"driver": {"name": "nodejs|mongosh", "version": "5.1.0"}, "application": {"name": "mongosh 1.8.0"}},
            "collectionType": "collection",
        },
        "keyHash": "dsoJ+LHAru0z6MJ1/IygJnnLTrlpVYYmPnlmNZbZrLI=",
        "queryShapeHash": "uxMLCvpiJ5N/IRqt4c28/0A8F01C8AA16CA805FF5C1A5737535F97E40C2A90CE91A82CCB7A74C7CCB9C48",
        "metrics": {
            "lastExecutionMicros": Int64(4254), "execCount": Int64(40),
            "keysExamined": {"sum": Int64(0), "max": Int64(0), "min": Int64(0), "sumOfSquares": Decimal128("0")},
            "docsExamined": {"sum": Int64(600000), "max": Int64(15000), "min": Int64(15000), "sumOfSquares": Decimal128("1")},
            "hasSortStage": False, "usedDisk": False, "fromMultiPlanner": False, "fromPlanCache": True,
            "totalExecMicros": {"sum": Int64(170160), "max": Int64(4254), "min": Int64(4254), "sumOfSquares": Decimal128("1")},
            "docsReturned": {"sum": Int64(40), "max": Int64(1), "min": Int64(1), "sumOfSquares": Decimal128("40")},
            "firstSeenTimestamp": dt.datetime(2023, 9, 14, 12, 30, 27), "latestSeenTimestamp": dt.datetime(2023, 9, 14, 12, 30, 27),
        },
        "asOf": Timestamp(1694695007, 0),
    },
    {
        "key": {
            "queryShape": {"cmdNs": {"db": "test", "coll": "products"}, "command": "aggregate",
                           "pipeline": [{"$match": {"qty": {"$gt": "?number"}}}]},
            "apiVersion": "1", "collectionType": "collection", "cursor": {"batchSize": "?number"},
        },
        "metrics": {
            "lastExecutionMicros": Int64(350), "execCount": Int64(3),
            "totalExecMicros": {"sum": Int64(3084), "max": Int64(2499), "min": Int64(235), "sumOfSquares": Decimal128("6422726")},
            "docsReturned": {"sum": Int64(3), "max": Int64(1), "min": Int64(1), "sumOfSquares": Decimal128("3")},
        },
    },
    {
        "key": {"queryShape": {"cmdNs": {"db": "test", "coll": "$cmd.aggregate"}, "command": "aggregate",
                               "pipeline": [{"$queryStats": {}}]}, "collectionType": "virtual"},
        "metrics": {"execCount": Int64(1)},
    },
]

# currentOp (active: true) on a mongod: a find scanning right now, and a short indexed one.
CURRENT_OP = {
    "inprog": [
        {"type": "op", "host": "db1:27017", "desc": "conn77", "connectionId": 77, "active": True, "opid": 9912,
         "secs_running": 42, "microsecs_running": Int64(42_118_000), "op": "query", "ns": "shop.orders",
         "command": {"find": "orders", "filter": {"customerEmail": "a@b.c"}, "$db": "shop"},
         "planSummary": "COLLSCAN", "numYields": 3300, "clientMetadata": {"application": {"name": "api"}}},
        {"type": "op", "active": True, "opid": 9913, "secs_running": 0, "microsecs_running": Int64(900), "op": "query",
         "ns": "shop.orders", "command": {"find": "orders", "filter": {"_id": 5}}, "planSummary": "IDHACK"},
        {"type": "op", "active": True, "opid": 1, "secs_running": 3600, "op": "none", "ns": "", "desc": "ReplBatcher"},
    ],
    "ok": 1.0,
}
