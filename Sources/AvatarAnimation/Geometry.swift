import Foundation

/// A point in image pixels.
public struct Point2: Sendable, Equatable, Codable {
    public var x: Double
    public var y: Double

    public init(_ x: Double, _ y: Double) {
        self.x = x
        self.y = y
    }

    static func + (a: Point2, b: Point2) -> Point2 { Point2(a.x + b.x, a.y + b.y) }
    static func - (a: Point2, b: Point2) -> Point2 { Point2(a.x - b.x, a.y - b.y) }
    static func * (a: Point2, s: Double) -> Point2 { Point2(a.x * s, a.y * s) }

    var length: Double { (x * x + y * y).squareRoot() }

    static func mix(_ a: Point2, _ b: Point2, _ t: Double) -> Point2 { a + (b - a) * t }
}

/// Three vertex indices into a point list.
public struct Triangle: Sendable, Equatable, Hashable {
    public var a: Int
    public var b: Int
    public var c: Int
}

/// Delaunay triangulation (Bowyer–Watson). Quadratic, which is plenty for a face mesh of ~600 points
/// built once per photo.
enum Delaunay {
    static func triangulate(_ points: [Point2]) -> [Triangle] {
        guard points.count >= 3 else { return [] }
        let xs = points.map(\.x), ys = points.map(\.y)
        let minX = xs.min()!, maxX = xs.max()!, minY = ys.min()!, maxY = ys.max()!
        let span = max(maxX - minX, maxY - minY) * 20
        let midX = (minX + maxX) / 2, midY = (minY + maxY) / 2
        var all = points
        all.append(Point2(midX - span, midY - span))
        all.append(Point2(midX + span, midY - span))
        all.append(Point2(midX, midY + span))
        let n = points.count
        var triangles: [(Triangle, Point2, Double)] = [(Triangle(a: n, b: n + 1, c: n + 2), Point2(0, 0), 0)]
        triangles[0] = withCircle(Triangle(a: n, b: n + 1, c: n + 2), all)

        for index in 0..<n {
            let p = all[index]
            var bad: [Int] = []
            for (i, entry) in triangles.enumerated() {
                let d = p - entry.1
                if d.x * d.x + d.y * d.y <= entry.2 { bad.append(i) }
            }
            var edgeCount: [Edge: Int] = [:]
            for i in bad {
                let t = triangles[i].0
                for edge in [Edge(t.a, t.b), Edge(t.b, t.c), Edge(t.c, t.a)] { edgeCount[edge, default: 0] += 1 }
            }
            for i in bad.reversed() { triangles.remove(at: i) }
            // In a fixed order, not the dictionary's (seeded per process): the same photo gives the same mesh, drawn
            // in the same order, in every run (folded triangles at the lips overlap, and the last one drawn shows).
            let boundary = edgeCount.filter { $0.value == 1 }.keys.sorted { ($0.u, $0.v) < ($1.u, $1.v) }
            for edge in boundary {
                triangles.append(withCircle(Triangle(a: edge.u, b: edge.v, c: index), all))
            }
        }
        return triangles.map(\.0).filter { $0.a < n && $0.b < n && $0.c < n }
    }

    private struct Edge: Hashable {
        let u: Int
        let v: Int
        init(_ a: Int, _ b: Int) { u = min(a, b); v = max(a, b) }
    }

    private static func withCircle(_ t: Triangle, _ p: [Point2]) -> (Triangle, Point2, Double) {
        let a = p[t.a], b = p[t.b], c = p[t.c]
        let d = 2 * (a.x * (b.y - c.y) + b.x * (c.y - a.y) + c.x * (a.y - b.y))
        guard abs(d) > 1e-12 else { return (t, a, .infinity) }
        let a2 = a.x * a.x + a.y * a.y, b2 = b.x * b.x + b.y * b.y, c2 = c.x * c.x + c.y * c.y
        let ux = (a2 * (b.y - c.y) + b2 * (c.y - a.y) + c2 * (a.y - b.y)) / d
        let uy = (a2 * (c.x - b.x) + b2 * (a.x - c.x) + c2 * (b.x - a.x)) / d
        let center = Point2(ux, uy)
        let r = a - center
        return (t, center, r.x * r.x + r.y * r.y)
    }
}
