package org.modelrunner.tests.kitchen;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

public class Kitchen {
    /** Returns its input with i32 + 1, name upper-cased, a point appended and the colour rotated. */
    public Everything echo(Everything e) {
        List<Point> pts = new ArrayList<>(e.points());
        Point p = new Point();
        p.x = pts.size();
        p.y = -1;
        pts.add(p);
        Color c = Color.values()[(e.color().ordinal() + 1) % 3];
        return new Everything(e.i32() + 1, e.i64(), e.f(), e.d(), e.flag(), e.name().toUpperCase(), e.blob(), c,
                e.origin(), pts, e.tags(), e.weights(), e.places(), e.nickname(), e.counts(), e.delta());
    }

    public double score(double age, String city) { return age * 2 + city.length(); }

    public static double total(Everything e) {
        double s = 0;
        for (Point p : e.points()) s += p.x + p.y;
        for (Map.Entry<String, Double> w : e.weights().entrySet()) s += w.getValue();
        return s;
    }

    /** Overloads: the bridge picks the one that binds. */
    public String describe(String text) { return "text:" + text; }

    public String describe(Point p) { return "point:" + p.x + "," + p.y; }
}
